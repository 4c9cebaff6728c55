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
from db.base import utcnow
from db.engine import Database
from db.identity import get_users
from db.notify import OutboxMessage
from domain.jobs import Jobs
from domain.lock_feed import LockChange
from domain.mails import Mail, lock_alert

logger = logging.getLogger("holdfast.notify")

SEND_JOB = "send-mail"


@dataclass(frozen=True)
class MailConfig:
    host: str | None
    port: int = 587
    username: str | None = None
    password: str | None = None
    tls: str = "starttls"
    sender: str = "holdfast@localhost"
    public_url: str = "http://127.0.0.1:8000"


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
            await self.jobs.enqueue(SEND_JOB, {"message": message.id}, session=session)
        return message

    async def lock_changes(
        self, session: AsyncSession, project_slug: str, changes: list[LockChange]
    ) -> None:
        """Queue the alerts these lock changes call for (to active holders only)."""
        alerts = [
            (change, mail)
            for change in changes
            if (mail := lock_alert(change, project_slug, self.config.public_url)) is not None
        ]
        if not alerts:
            return
        users = {
            user.id: user
            for user in await get_users(session, {change.owner.id for change, _ in alerts})
        }
        for change, mail in alerts:
            holder = users.get(change.owner.id)
            if holder is not None and holder.active:
                await self.queue(session, f"lock-{change.event.kind.lower()}", holder.email, mail)

    async def _send_job(self, payload: dict[str, Any]) -> None:
        message_id = payload["message"]
        async with self.db.transaction() as session:
            if not await store.claim_for_sending(session, message_id):
                return
            message = await session.get(OutboxMessage, message_id)
        try:
            await self._deliver(message)
        except (aiosmtplib.SMTPException, OSError) as error:
            async with self.db.transaction() as session:
                await store.set_status(
                    session, message_id, "pending", error=f"{type(error).__name__}: {error}"
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
