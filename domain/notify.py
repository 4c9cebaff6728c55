"""Mail: written to an outbox in the transaction of the change that caused it, sent by a job.

Each message is sent at most once, whatever the number of replicas: it is marked `sending` in
its own committed transaction before the SMTP conversation starts, and only a message still
`pending` can be claimed. A refused or unreachable server puts it back to `pending` and the job
retries with backoff. With no SMTP server configured, messages are kept as `skipped`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncSession

from db import notify as store
from db import projects as project_store
from db.base import utcnow
from db.engine import Database
from db.identity import User, get_users
from db.notify import OutboxMessage, Watch
from db.projects import Project
from domain.jobs import Jobs
from domain.lock_feed import LockChange
from domain.mails import Mail, lock_alert, watch_alert
from domain.paths import normalize_prefix, path_key
from domain.projects import find_project

logger = logging.getLogger("holdfast.notify")

SEND_JOB = "send-mail"
SEND_ATTEMPTS = 5


@dataclass(frozen=True)
class MailConfig:
    host: str | None
    port: int = 587
    username: str | None = None
    password: str | None = None
    tls: str = "starttls"
    sender: str = "holdfast@localhost"
    public_url: str = "http://127.0.0.1:8000"
    alert_policy: str = "watchers"


class Notifier:
    def __init__(self, db: Database, jobs: Jobs, config: MailConfig) -> None:
        self.db = db
        self.jobs = jobs
        self.config = config
        jobs.handle(SEND_JOB, self._send_job)

    @property
    def public_url(self) -> str:
        return self.config.public_url

    @property
    def enabled(self) -> bool:
        return self.config.host is not None

    def link(self, path: str, token: str) -> str:
        return f"{self.config.public_url.rstrip('/')}/{path}?token={token}"

    async def queue(self, session: AsyncSession, kind: str, to: str, mail: Mail) -> OutboxMessage:
        """Write a message in the caller's transaction, and the job that will send it."""
        message = OutboxMessage(
            kind=kind,
            to_address=to,
            subject=mail.subject,
            text_body=mail.text,
            html_body=mail.html,
            status="pending" if self.config.host else "skipped",
            attempts=0,
            created_at=utcnow(),
        )
        session.add(message)
        await session.flush()
        if self.config.host:
            await self.jobs.enqueue(
                SEND_JOB, {"message": message.id}, session=session, max_attempts=SEND_ATTEMPTS
            )
        return message

    async def lock_changes(
        self, session: AsyncSession, project: Project, changes: list[LockChange]
    ) -> None:
        """Queue the mail these lock changes call for: to the holder when someone else (or
        time) acted on their lock, and to watchers (per `alert_policy`) of what was locked or
        released. Only active users get mail."""
        alerts = [
            (change, mail)
            for change in changes
            if (mail := lock_alert(change, project.slug, self.config.public_url)) is not None
        ]
        watched = await self._watchers(session, project, changes)
        ids = {change.owner.id for change, _ in alerts} | {
            user_id for users in watched.values() for user_id in users
        }
        users = {user.id: user for user in await get_users(session, ids) if user.active}
        for change, mail in alerts:
            if (holder := users.get(change.owner.id)) is not None:
                await self.queue(session, f"lock-{change.event.kind.lower()}", holder.email, mail)
        for change, watcher_ids in watched.items():
            mail = watch_alert(change, project.slug, self.config.public_url)
            for user_id in sorted(watcher_ids):
                if (watcher := users.get(user_id)) is not None:
                    await self.queue(session, "lock-watch", watcher.email, mail)

    async def _watchers(
        self, session: AsyncSession, project: Project, changes: list[LockChange]
    ) -> dict[LockChange, set[int]]:
        """Who to tell of each lock taken or released, besides the one who did it."""
        watched_kinds = {"ACQUIRED", "RELEASED", "FORCE_RELEASED", "EXPIRED"}
        relevant = [change for change in changes if change.event.kind in watched_kinds]
        if self.config.alert_policy == "none" or not relevant:
            return {}
        if self.config.alert_policy == "everyone":
            everyone = {user.id for user in await store.active_users(session)}
            candidates = {change: set(everyone) for change in relevant}
        else:
            watches = await store.watches_of_project(session, project.id)
            candidates = {
                change: {
                    watch.user_id
                    for watch in watches
                    if path_key(change.event.path, project.case_sensitive).startswith(
                        path_key(watch.path_prefix, project.case_sensitive)
                    )
                }
                for change in relevant
            }
        for change, users in candidates.items():
            users.discard(change.actor.id if change.actor else None)
        return {change: users for change, users in candidates.items() if users}

    async def watch(self, actor: User, slug: str, raw_prefix: str) -> Watch:
        prefix = normalize_prefix(raw_prefix)
        async with self.db.transaction() as session:
            project = await find_project(session, slug)
            existing = [
                watch
                for watch in await store.watches_of_user(session, actor.id)
                if watch.project_id == project.id and watch.path_prefix == prefix
            ]
            if existing:
                return existing[0]
            watch = Watch(
                user_id=actor.id, project_id=project.id, path_prefix=prefix, created_at=utcnow()
            )
            session.add(watch)
            await session.flush()
            return watch

    async def unwatch(self, actor: User, slug: str, raw_prefix: str) -> bool:
        prefix = normalize_prefix(raw_prefix)
        async with self.db.transaction() as session:
            project = await find_project(session, slug)
            return await store.delete_watch(session, actor.id, project.id, prefix)

    async def watches(self, actor: User) -> list[tuple[Watch, Project]]:
        async with self.db.read() as session:
            watches = await store.watches_of_user(session, actor.id)
            projects = {
                project.id: project
                for project in await project_store.list_projects(session, include_archived=True)
            }
        return [(watch, projects[watch.project_id]) for watch in watches]

    async def _send_job(self, payload: dict[str, Any]) -> None:
        message_id = payload["message"]
        async with self.db.transaction() as session:
            if not await store.claim_for_sending(session, message_id):
                return
            message = await session.get(OutboxMessage, message_id)
        try:
            await self._deliver(message)
        except (aiosmtplib.SMTPException, OSError) as error:
            given_up = message.attempts >= SEND_ATTEMPTS
            async with self.db.transaction() as session:
                await store.set_status(
                    session,
                    message_id,
                    "failed" if given_up else "pending",
                    error=f"{type(error).__name__}: {error}",
                )
            raise
        async with self.db.transaction() as session:
            await store.set_status(session, message_id, "sent", sent_at=utcnow())

    async def _deliver(self, message: OutboxMessage) -> None:
        mail = EmailMessage()
        mail["From"] = self.config.sender
        mail["To"] = message.to_address
        mail["Subject"] = message.subject
        mail.set_content(message.text_body)
        mail.add_alternative(message.html_body, subtype="html")
        await aiosmtplib.send(
            mail,
            hostname=self.config.host,
            port=self.config.port,
            username=self.config.username,
            password=self.config.password,
            use_tls=self.config.tls == "tls",
            start_tls=self.config.tls == "starttls",
            timeout=30,
        )
