"""Locks and their event log."""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base

MAX_PATH_LENGTH = 1024


class Lock(Base):
    """A held lock. Released locks are deleted; their history lives in `lock_events`."""

    __tablename__ = "locks"
    __table_args__ = (
        UniqueConstraint("project_id", "path_key"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(MAX_PATH_LENGTH))
    """As first written (normalised)."""
    path_key: Mapped[str] = mapped_column(String(MAX_PATH_LENGTH))
    """What uniqueness is decided on: the path, case-folded in case-insensitive projects."""
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    branch: Mapped[str | None] = mapped_column(String(255))
    comment: Mapped[str | None] = mapped_column(String(500))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    fencing_token: Mapped[int] = mapped_column(BigInteger)
    warned_at: Mapped[datetime | None]
    """When the holder was told the lock is about to expire (cleared by a renewal)."""


class LockEvent(Base):
    """One change to a lock, with a snapshot of the lock; `seq` is dense per project."""

    __tablename__ = "lock_events"
    __table_args__ = (
        UniqueConstraint("project_id", "seq"),
        Index("ix_lock_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(24))
    lock_id: Mapped[int]
    path: Mapped[str] = mapped_column(String(MAX_PATH_LENGTH))
    owner_id: Mapped[int]
    owner_username: Mapped[str] = mapped_column(String(64))
    branch: Mapped[str | None] = mapped_column(String(255))
    comment: Mapped[str | None] = mapped_column(String(500))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    fencing_token: Mapped[int] = mapped_column(BigInteger)
    actor_id: Mapped[int | None]
    actor_username: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime]


def live(now: datetime):
    """Locks that have not expired by `now`."""
    return or_(Lock.expires_at.is_(None), Lock.expires_at > now)


async def locks_on_keys(session: AsyncSession, project_id: int, keys: list[str]) -> list[Lock]:
    query = select(Lock).where(Lock.project_id == project_id, Lock.path_key.in_(keys))
    return list((await session.execute(query)).scalars().all())


async def get_lock(session: AsyncSession, project_id: int, lock_id: int) -> Lock | None:
    query = select(Lock).where(Lock.project_id == project_id, Lock.id == lock_id)
    return (await session.execute(query)).scalar_one_or_none()


async def find_locks(
    session: AsyncSession,
    project_id: int,
    *,
    now: datetime,
    key_prefix: str | None = None,
    owner_id: int | None = None,
    branch: str | None = None,
    after_id: int | None = None,
    limit: int | None = None,
) -> tuple[list[Lock], int]:
    """Live locks in id order (a page of them with `limit`), and how many match in all."""
    conditions = [Lock.project_id == project_id, live(now)]
    if key_prefix:
        conditions.append(func.substr(Lock.path_key, 1, len(key_prefix)) == key_prefix)
    if owner_id is not None:
        conditions.append(Lock.owner_id == owner_id)
    if branch is not None:
        conditions.append(Lock.branch == branch)
    total = (
        await session.execute(select(func.count()).select_from(Lock).where(*conditions))
    ).scalar_one()
    query = select(Lock).where(*conditions).order_by(Lock.id)
    if after_id is not None:
        query = query.where(Lock.id > after_id)
    if limit is not None:
        query = query.limit(limit)
    return list((await session.execute(query)).scalars().all()), total


async def projects_of_owner(session: AsyncSession, owner_id: int) -> list[int]:
    query = select(Lock.project_id).where(Lock.owner_id == owner_id).distinct()
    return sorted((await session.execute(query)).scalars().all())


async def locks_of_owner(session: AsyncSession, project_id: int, owner_id: int) -> list[Lock]:
    query = (
        select(Lock)
        .where(Lock.project_id == project_id, Lock.owner_id == owner_id)
        .order_by(Lock.id)
    )
    return list((await session.execute(query)).scalars().all())


def _due(now: datetime, acquired_before: datetime | None):
    """Locks past their expiry, or (auto-release policy) acquired before a moment."""
    condition = Lock.expires_at <= now
    if acquired_before is not None:
        condition = or_(condition, Lock.acquired_at < acquired_before)
    return condition


async def projects_with_due_locks(
    session: AsyncSession, now: datetime, acquired_before: datetime | None
) -> list[int]:
    query = select(Lock.project_id).where(_due(now, acquired_before)).distinct()
    return sorted((await session.execute(query)).scalars().all())


async def due_locks(
    session: AsyncSession, project_id: int, now: datetime, acquired_before: datetime | None
) -> list[Lock]:
    query = (
        select(Lock)
        .where(Lock.project_id == project_id, _due(now, acquired_before))
        .order_by(Lock.id)
    )
    return list((await session.execute(query)).scalars().all())


async def locks_to_warn(session: AsyncSession, now: datetime, until: datetime) -> list[Lock]:
    """Live locks expiring by `until` whose holder has not been warned yet."""
    query = (
        select(Lock)
        .where(Lock.expires_at > now, Lock.expires_at <= until, Lock.warned_at.is_(None))
        .order_by(Lock.id)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(query)).scalars().all())


async def events_after(
    session: AsyncSession,
    project_id: int,
    after_seq: int,
    *,
    through_seq: int | None = None,
    limit: int | None = None,
) -> list[LockEvent]:
    query = (
        select(LockEvent)
        .where(LockEvent.project_id == project_id, LockEvent.seq > after_seq)
        .order_by(LockEvent.seq)
    )
    if through_seq is not None:
        query = query.where(LockEvent.seq <= through_seq)
    if limit is not None:
        query = query.limit(limit)
    return list((await session.execute(query)).scalars().all())


async def purge_events_before(session: AsyncSession, cutoff: datetime) -> dict[int, int]:
    """Delete events older than `cutoff`; returns the highest seq removed per project."""
    query = (
        select(LockEvent.project_id, func.max(LockEvent.seq))
        .where(LockEvent.at < cutoff)
        .group_by(LockEvent.project_id)
    )
    purged = {project_id: seq for project_id, seq in (await session.execute(query)).all()}
    for project_id, seq in purged.items():
        await session.execute(
            delete(LockEvent).where(LockEvent.project_id == project_id, LockEvent.seq <= seq)
        )
    return purged
