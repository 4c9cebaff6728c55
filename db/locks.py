"""Locks (the holds of a project's paths) and their event log on the project's stream."""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    String,
    UniqueConstraint,
    case,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from db.engine import Database
from db.identity import User
from db.projects import Project
from db.streams import HoldTable, StreamEvent, change_holds, insert_holds

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
    """The seq of the event that acquired it."""
    warned_at: Mapped[datetime | None]
    """When the holder was told the lock is about to expire (cleared by a renewal)."""


class LockEvent(StreamEvent, Base):
    """One change to a lock, with a snapshot of the lock."""

    __tablename__ = "lock_events"

    lock_id: Mapped[int]
    path: Mapped[str] = mapped_column(String(MAX_PATH_LENGTH))
    owner_id: Mapped[int]
    owner_username: Mapped[str] = mapped_column(String(64))
    branch: Mapped[str | None] = mapped_column(String(255))
    comment: Mapped[str | None] = mapped_column(String(500))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    fencing_token: Mapped[int] = mapped_column(BigInteger)


LOCKS = HoldTable(
    hold=Lock,
    event=LockEvent,
    hold_ref="lock_id",
    holder="owner_id",
    holder_name="owner_username",
    token="fencing_token",
)


def live(now: datetime):
    """Locks that have not expired by `now`."""
    return or_(Lock.expires_at.is_(None), Lock.expires_at > now)


# -- writes: one statement each on PostgreSQL -------------------------------------------------


def _open(project_id: int):
    return ~exists(
        select(Project.id).where(Project.id == project_id, Project.archived_at.is_not(None))
    )


async def take(
    db: Database, stream_id: int, project_id: int, actor: User, locks: list[dict], at: datetime
) -> list[LockEvent] | None:
    """Insert these locks with ACQUIRED events. None — nothing written — when the actor is not
    active or the project is archived; raises HoldTaken when a key is locked already."""
    return await insert_holds(
        db,
        LOCKS,
        stream_id=stream_id,
        actor=actor,
        rows=locks,
        kind="ACQUIRED",
        at=at,
        guard=_open(project_id),
    )


def _on_keys(project_id: int, keys: list[str], now: datetime | None, owner_id: int | None):
    """Locks on these keys (live at `now`, if given; of `owner_id`, if given)."""
    condition = (Lock.project_id == project_id) & Lock.path_key.in_(keys)
    if now is not None:
        condition &= live(now)
    if owner_id is not None:
        condition &= Lock.owner_id == owner_id
    return condition


async def give_back(
    db: Database,
    stream_id: int,
    project_id: int,
    actor: User,
    keys: list[str],
    *,
    force: bool,
    at: datetime,
) -> list[LockEvent] | None:
    """Release the locks on every key (the actor's own unless `force`; expired or not):
    RELEASED for the actor's, FORCE_RELEASED for others'. None — nothing written — unless
    every key matched."""

    def kind(held):
        return case((held.owner_id == actor.id, literal("RELEASED")), else_="FORCE_RELEASED")

    return await change_holds(
        db,
        LOCKS,
        stream_id=stream_id,
        actor=actor,
        where=_on_keys(project_id, keys, None, None if force else actor.id),
        expected=len(keys),
        action="delete",
        kind=kind,
        at=at,
    )


async def give_back_by_id(
    db: Database,
    stream_id: int,
    project_id: int,
    actor: User,
    lock_id: int,
    *,
    force: bool,
    at: datetime,
) -> list[LockEvent] | None:
    condition = (Lock.project_id == project_id) & (Lock.id == lock_id) & live(at)
    if not force:
        condition &= Lock.owner_id == actor.id

    def kind(held):
        return case((held.owner_id == actor.id, literal("RELEASED")), else_="FORCE_RELEASED")

    return await change_holds(
        db,
        LOCKS,
        stream_id=stream_id,
        actor=actor,
        where=condition,
        expected=1,
        action="delete",
        kind=kind,
        at=at,
    )


async def extend(
    db: Database,
    stream_id: int,
    project_id: int,
    actor: User,
    key: str,
    expires_at: datetime,
    at: datetime,
) -> list[LockEvent] | None:
    """The actor's live lock on `key` now expires at `expires_at` (RENEWED)."""
    return await change_holds(
        db,
        LOCKS,
        stream_id=stream_id,
        actor=actor,
        where=_on_keys(project_id, [key], at, actor.id),
        expected=1,
        action="update",
        changes={"expires_at": expires_at, "warned_at": None},
        kind="RENEWED",
        at=at,
        guard=_open(project_id),
    )


async def note(
    db: Database,
    stream_id: int,
    project_id: int,
    actor: User,
    key: str,
    kind: str,
    message: str | None,
    at: datetime,
) -> list[LockEvent] | None:
    """Record `kind` for someone else's live lock on `key`, changing nothing."""
    where = _on_keys(project_id, [key], at, None) & (Lock.owner_id != actor.id)
    return await change_holds(
        db,
        LOCKS,
        stream_id=stream_id,
        actor=actor,
        where=where,
        expected=1,
        action="note",
        kind=kind,
        at=at,
        message=message,
    )


# -- reads ------------------------------------------------------------------------------------


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
