"""Locks (the holds of a project's paths) and their event log on the project's stream."""

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from db.engine import Database
from db.identity import User
from db.projects import Project
from db.streams import HoldTable, HotWrite, Shown, Stream, StreamEvent, constant, run_hot

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
    shown=Shown(
        "locks",
        what=select(Project.slug + ":" + Lock.path)
        .where(Project.id == Lock.project_id)
        .scalar_subquery(),
        since="acquired_at",
        until="expires_at",
    ),
)


def live(now: datetime):
    """Locks that have not expired by `now`."""
    return or_(Lock.expires_at.is_(None), Lock.expires_at > now)


# -- writes: one statement each on PostgreSQL -------------------------------------------------


def _released_or_forced(held):
    actor = bindparam("hf_actor", type_=Integer)
    return case((held.owner_id == actor, constant("RELEASED")), else_=constant("FORCE_RELEASED"))


_PROJECT = bindparam("p_project", type_=Integer)
_OPEN = ~exists(select(Project.id).where(Project.id == _PROJECT, Project.archived_at.is_not(None)))
"""The project is not archived."""
_ON_KEYS = (Lock.project_id == _PROJECT) & Lock.path_key.in_(bindparam("p_keys", expanding=True))
_OWNED = Lock.owner_id == bindparam("hf_actor", type_=Integer)
_LIVE = or_(
    Lock.expires_at.is_(None), Lock.expires_at > bindparam("hf_at", type_=Lock.expires_at.type)
)

TAKE = HotWrite(
    LOCKS,
    "take",
    "ACQUIRED",
    columns=(
        "project_id",
        "path",
        "path_key",
        "owner_id",
        "branch",
        "comment",
        "acquired_at",
        "expires_at",
    ),
    guard=_OPEN,
)
GIVE_BACK = HotWrite(LOCKS, "delete", _released_or_forced, where=_ON_KEYS & _OWNED)
_BY_ID = (Lock.project_id == _PROJECT) & (Lock.id == bindparam("p_lock", type_=Integer)) & _LIVE
GIVE_BACK_BY_ID = HotWrite(LOCKS, "delete", _released_or_forced, where=_BY_ID & _OWNED)
EXTEND = HotWrite(
    LOCKS,
    "update",
    "RENEWED",
    columns=("expires_at", "warned_at"),
    where=_ON_KEYS & _OWNED & _LIVE,
    guard=_OPEN,
)
ASK = HotWrite(
    LOCKS,
    "note",
    "RELEASE_REQUESTED",
    where=_ON_KEYS & ~_OWNED & _LIVE,
)


async def take(
    db: Database, stream_id: int, project_id: int, actor: User, locks: list[dict], at: datetime
) -> list[LockEvent] | None:
    """Insert these locks with ACQUIRED events. None — nothing written — when the actor is not
    active or the project is archived; raises HoldTaken when a key is locked already."""
    return await run_hot(
        db,
        TAKE,
        stream_id=stream_id,
        actor=actor,
        at=at,
        rows=locks,
        params={"p_project": project_id},
    )


async def give_back(
    db: Database,
    stream_id: int,
    project_id: int,
    actor: User,
    keys: list[str],
    *,
    at: datetime,
) -> list[LockEvent] | None:
    """Release the actor's own locks on every key (expired or not) as RELEASED. None —
    nothing written — unless every key matched. (Forcing another's is the general path's:
    it is audited in the same transaction.)"""
    return await run_hot(
        db,
        GIVE_BACK,
        stream_id=stream_id,
        actor=actor,
        at=at,
        expected=len(keys),
        params={"p_project": project_id, "p_keys": keys},
    )


async def give_back_by_id(
    db: Database,
    stream_id: int,
    project_id: int,
    actor: User,
    lock_id: int,
    *,
    at: datetime,
) -> list[LockEvent] | None:
    return await run_hot(
        db,
        GIVE_BACK_BY_ID,
        stream_id=stream_id,
        actor=actor,
        at=at,
        expected=1,
        params={"p_project": project_id, "p_lock": lock_id},
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
    return await run_hot(
        db,
        EXTEND,
        stream_id=stream_id,
        actor=actor,
        at=at,
        expected=1,
        params={
            "p_project": project_id,
            "p_keys": [key],
            "set_expires_at": expires_at,
            "set_warned_at": None,
        },
    )


async def note(
    db: Database,
    stream_id: int,
    project_id: int,
    actor: User,
    key: str,
    message: str | None,
    at: datetime,
) -> list[LockEvent] | None:
    """Record RELEASE_REQUESTED for someone else's live lock on `key`, changing nothing."""
    return await run_hot(
        db,
        ASK,
        stream_id=stream_id,
        actor=actor,
        at=at,
        expected=1,
        message=message,
        params={"p_project": project_id, "p_keys": [key]},
    )


# -- reads ------------------------------------------------------------------------------------

_VERSION = select(
    Stream.last_seq,
    select(func.min(Lock.expires_at))
    .where(Lock.project_id == bindparam("p_project", type_=Integer))
    .scalar_subquery(),
).where(Stream.id == bindparam("p_stream", type_=Integer))


async def stream_version(
    db: Database, stream_id: int, project_id: int
) -> tuple[int, datetime | None]:
    """The seq of the project's newest lock event and the soonest a lock of it expires: while
    both stay, the project's lists stay the same."""
    values = {"p_stream": stream_id, "p_project": project_id}
    if db.dialect == "postgresql":
        [row] = await db.fetch(_VERSION, values)
        return row[0], row[1]
    async with db.read() as session:
        row = (await session.execute(_VERSION, values)).one()
    expiry = row[1]
    if expiry is not None and expiry.tzinfo is None:  # SQLite keeps no offset; stored as UTC
        expiry = expiry.replace(tzinfo=UTC)
    return row[0], expiry


async def locks_on_keys(session: AsyncSession, project_id: int, keys: list[str]) -> list[Lock]:
    query = select(Lock).where(Lock.project_id == project_id, Lock.path_key.in_(keys))
    return list((await session.execute(query)).scalars().all())


async def get_lock(session: AsyncSession, project_id: int, lock_id: int) -> Lock | None:
    query = select(Lock).where(Lock.project_id == project_id, Lock.id == lock_id)
    return (await session.execute(query)).scalar_one_or_none()


def _live_matching(
    project_id: int,
    now: datetime,
    key_prefix: str | None,
    owner_id: int | None,
    branch: str | None,
) -> list:
    conditions = [Lock.project_id == project_id, live(now)]
    if key_prefix:
        conditions.append(func.substr(Lock.path_key, 1, len(key_prefix)) == key_prefix)
    if owner_id is not None:
        conditions.append(Lock.owner_id == owner_id)
    if branch is not None:
        conditions.append(Lock.branch == branch)
    return conditions


async def live_locks_on_branch(
    session: AsyncSession, project_id: int, owner_id: int, branch: str, now: datetime
) -> list[Lock]:
    """The owner's live locks on this branch, in id order."""
    conditions = _live_matching(project_id, now, None, owner_id, branch)
    query = select(Lock).where(*conditions).order_by(Lock.id)
    return list((await session.execute(query)).scalars().all())


async def page_of_locks(
    session: AsyncSession,
    project_id: int,
    *,
    now: datetime,
    key_prefix: str | None = None,
    owner_id: int | None = None,
    branch: str | None = None,
    after_id: int | None = None,
    limit: int,
) -> tuple[list, int]:
    """A page of live locks in id order with their owners' username, role and active (one
    query, plain rows), and how many match in all."""
    conditions = _live_matching(project_id, now, key_prefix, owner_id, branch)
    paged = list(conditions)
    if after_id is not None:
        paged.append(Lock.id > after_id)
    total = (
        select(func.count()).select_from(Lock).where(*conditions).scalar_subquery()
        if after_id is not None
        else func.count().over()
    )
    query = (
        select(
            *(column for column in Lock.__table__.c),
            User.username.label("owner_username"),
            User.role.label("owner_role"),
            User.active.label("owner_active"),
            total.label("total"),
        )
        .join(User, User.id == Lock.owner_id)
        .where(*paged)
        .order_by(Lock.id)
        .limit(limit)
    )
    rows = list((await session.execute(query)).all())
    if rows:
        return rows, rows[0].total
    if after_id is None:
        return rows, 0
    count = select(func.count()).select_from(Lock).where(*conditions)
    return rows, (await session.execute(count)).scalar_one()


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
