"""Mail: written to an outbox in a transaction, sent by a job.

Mail about stream events (a lock force-released, a GPU overdue …) is not written by the write
that made the event — that write is kept as short as the database allows. Instead the mailer
follows every stream: once per cluster (a cursor row per stream, claimed with SKIP LOCKED), it
reads the events after its cursor, lets the area's `mail` rule queue messages, and moves the
cursor, all in one transaction, so each event is mailed about exactly once, even across crashes.

Each message is sent at most once, whatever the number of replicas: it is marked `sending` in
its own committed transaction before the SMTP conversation starts, and only a message still
`pending` can be claimed. A refused or unreachable server puts it back to `pending` and the job
retries with backoff. With no SMTP server configured, messages are kept as `skipped`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncSession

from db import notify as store
from db import projects as project_store
from db import streams as stream_store
from db.base import utcnow
from db.engine import Database
from db.identity import User, get_users
from db.notify import OutboxMessage, Watch
from domain import audit
from domain.jobs import Jobs
from domain.mails import Mail
from domain.paths import normalize_prefix
from domain.projects import ProjectState, find_project
from domain.streams import Change, EventSource

logger = logging.getLogger("holdfast.notify")

SEND_JOB = "send-mail"
SEND_ATTEMPTS = 5
MAILER = "mail"
EVENTS_PER_ROUND = 500


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
        self._sources: dict[str, EventSource] = {}
        jobs.handle(SEND_JOB, self._send_job)
        jobs.poll(self.mail_about_events)

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

    async def tell_holders(
        self,
        session: AsyncSession,
        changes: list[Change],
        alert: Callable[[Change, str], Mail | None],
        area: str,
    ) -> None:
        """An area's mail rule: for each change `alert` has words for, mail its holder (active
        users only), as kind `<area>-<event kind>`."""
        alerts = [(c, mail) for c in changes if (mail := alert(c, self.public_url)) is not None]
        holders = {
            user.id: user for user in await get_users(session, {c.holder.id for c, _ in alerts})
        }
        for change, mail in alerts:
            holder = holders.get(change.holder.id)
            if holder is not None and holder.active:
                kind = f"{area}-{change.event.kind.lower().replace('_', '-')}"
                await self.queue(session, kind, holder.email, mail)

    def mail_on(self, source: EventSource) -> None:
        """Run `source.mail` for every event of the source's streams, once per cluster."""
        self._sources[source.scope] = source

    async def mail_about_events(self) -> int:
        """One round of the mailer over every stream with unprocessed events; returns how many
        events it processed (cheap, a read, when there are none)."""
        async with self.db.read() as session:
            behind = await stream_store.streams_behind(session, MAILER)
        done = 0
        for stream_id, scope in behind:
            source = self._sources.get(scope.split(":", 1)[0])
            async with self.db.transaction() as session:
                cursor = await stream_store.claim_cursor(session, MAILER, stream_id)
                if cursor is None:
                    continue
                stream = await stream_store.get_stream(session, stream_id)
                cursor.seq = max(cursor.seq, stream.purged_through_seq)
                changes = []
                if source is not None and source.mail is not None:
                    changes = await source.stored(
                        session, stream_id, cursor.seq, limit=EVENTS_PER_ROUND
                    )
                    if changes:
                        await source.mail(session, stream_id, changes)
                cursor.seq = changes[-1].seq if changes else stream.last_seq
                done += len(changes)
        return done

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
            audit.record(
                session,
                actor=actor,
                action="create",
                resource_type="watch",
                resource_id=watch.id,
                after={"project": project.slug, "path_prefix": prefix},
            )
            return watch

    async def unwatch(self, actor: User, slug: str, raw_prefix: str) -> bool:
        prefix = normalize_prefix(raw_prefix)
        async with self.db.transaction() as session:
            project = await find_project(session, slug)
            watch = next(
                (
                    watch
                    for watch in await store.watches_of_user(session, actor.id)
                    if watch.project_id == project.id and watch.path_prefix == prefix
                ),
                None,
            )
            if watch is None or not await store.end_watch(
                session, actor.id, project.id, prefix, utcnow()
            ):
                return False
            audit.record(
                session,
                actor=actor,
                action="delete",
                resource_type="watch",
                resource_id=watch.id,
                before={
                    "project": project.slug,
                    "path_prefix": prefix,
                    "created_at": watch.created_at,
                },
            )
            return True

    async def watches(self, actor: User) -> list[tuple[Watch, ProjectState]]:
        async with self.db.read() as session:
            watches = await store.watches_of_user(session, actor.id)
            projects = {
                row[0].id: ProjectState(*row)
                for row in await project_store.list_projects(session, include_archived=True)
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
