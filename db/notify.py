"""The mail outbox: every message is written in the transaction that caused it."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, delete, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from db.identity import User


class OutboxMessage(Base):
    """`pending` → `sending` → `sent`; `skipped` when mail is off; `failed` after retries."""

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_status", "status"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


async def claim_for_sending(session: AsyncSession, message_id: int) -> bool:
    """Mark a pending message as being sent; False if it was sent or claimed already."""
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == "pending")
        .values(status="sending", attempts=OutboxMessage.attempts + 1)
    )
    return result.rowcount == 1


async def set_status(
    session: AsyncSession,
    message_id: int,
    status: str,
    *,
    error: str | None = None,
    sent_at: datetime | None = None,
) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(status=status, error=error, sent_at=sent_at)
    )


class Watch(Base):
    """A user wants mail when locks change under a path prefix ('' = the whole project), from
    `created_at` until `ended_at` (mail is written after the change, for those watching then)."""

    __tablename__ = "watches"
    __table_args__ = (
        Index(
            "uq_watches_active",
            "user_id",
            "project_id",
            "path_prefix",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    path_prefix: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]

    def active_at(self, moment: datetime) -> bool:
        return self.created_at <= moment and (self.ended_at is None or moment < self.ended_at)


async def watches_of_project(
    session: AsyncSession, project_id: int, since: datetime
) -> list[Watch]:
    """The project's watches that were active at some moment from `since` on."""
    query = select(Watch).where(
        Watch.project_id == project_id, or_(Watch.ended_at.is_(None), Watch.ended_at > since)
    )
    return list((await session.execute(query)).scalars().all())


async def watches_of_user(session: AsyncSession, user_id: int) -> list[Watch]:
    query = (
        select(Watch).where(Watch.user_id == user_id, Watch.ended_at.is_(None)).order_by(Watch.id)
    )
    return list((await session.execute(query)).scalars().all())


async def end_watch(
    session: AsyncSession, user_id: int, project_id: int, prefix: str, at: datetime
) -> bool:
    result = await session.execute(
        update(Watch)
        .where(
            Watch.user_id == user_id,
            Watch.project_id == project_id,
            Watch.path_prefix == prefix,
            Watch.ended_at.is_(None),
        )
        .values(ended_at=at)
    )
    return result.rowcount == 1


async def purge_ended_watches(session: AsyncSession, before: datetime) -> None:
    await session.execute(delete(Watch).where(Watch.ended_at < before))


async def active_users(session: AsyncSession) -> list[User]:
    return list((await session.execute(select(User).where(User.active.is_(True)))).scalars())
