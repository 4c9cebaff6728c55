"""Streams: the ordered, gapless log of changes of one scope, and holds written onto one.

A stream row (a project's locks, the GPU pool, a parking lot, ...) carries the seq of its newest
event. Every write that records events takes the row's lock and advances `last_seq` in the
same transaction, so a stream's seqs are dense (1, 2, 3 …) and follow commit order; a rollback
gives its numbers back.

An area's events live in a table of its own built on `StreamEvent`; an area's holds in a table
described by a `HoldTable`. The hot writes — take holds, release, renew, note — are one statement
each on PostgreSQL (in autocommit: the stream's row is locked only while the database runs it)
and one short transaction on SQLite. Lock order is always: the acting user (key share), the
stream, the holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    cast,
    column,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    true,
    update,
    values,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from db.base import Base, insert_unless_exists
from db.engine import Database
from db.identity import User

HOLD_CHECK_FUNCTION = "holdfast_hold_check"
"""PostgreSQL function (migration 0010) that aborts a statement whose holds changed under it."""
HOLD_CHECK_SQLSTATE = "HF001"


class Stream(Base):
    __tablename__ = "streams"

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(100), unique=True)
    """What the stream orders, e.g. `locks:3` (project 3's locks)."""
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    purged_through_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    """Events with seq at or below this were removed by the retention job."""


class StreamCursor(Base):
    """How far a consumer (e.g. the mailer) has processed a stream's events."""

    __tablename__ = "stream_cursors"

    consumer: Mapped[str] = mapped_column(String(32), primary_key=True)
    stream_id: Mapped[int] = mapped_column(
        ForeignKey("streams.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, default=0)


class StreamEvent:
    """The columns every stream's event table has; an area adds the snapshot of its hold."""

    id: Mapped[int] = mapped_column(primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[int | None]
    actor_username: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime]

    @declared_attr.directive
    def __table_args__(cls) -> tuple:
        return (
            UniqueConstraint("stream_id", "seq"),
            Index(f"ix_{cls.__tablename__}_at", "at"),
        )


ENGINE_COLUMNS = frozenset(
    ("id", "stream_id", "seq", "kind", "actor_id", "actor_username", "message", "at")
)


def _names(model: type[Base]) -> list[str]:
    return [column.key for column in model.__table__.c]


@dataclass(frozen=True)
class HoldTable:
    """An area's hold table and the event table that records changes to it.

    Every column of the event table that is not the engine's is filled from the hold row: the
    column `hold_ref` with the hold's id, `holder_name` with the holder's username, and every
    other one from the hold column of the same name (so a new event column needs no code, and
    one without a source fails here, at import).
    """

    hold: type[Base]
    event: type[Base]
    hold_ref: str
    holder: str
    holder_name: str | None = None
    token: str | None = None
    """A hold column set to the seq of the event that took the hold: a fencing token that only
    grows within the stream."""

    def __post_init__(self) -> None:
        hold_columns = set(_names(self.hold))
        for name in _names(self.event):
            if name in ENGINE_COLUMNS or name in (self.hold_ref, self.holder_name):
                continue
            if name not in hold_columns:
                raise TypeError(f"{self.event.__name__}.{name} has no source in {self.hold}")

    def event_columns(
        self,
        source,
        *,
        stream_id: int,
        seq: ColumnElement,
        kind: str | Callable[[Any], ColumnElement],
        actor: User | None,
        message: str | None,
        at: datetime,
    ) -> dict[str, ColumnElement]:
        """SQL for each event column, from a hold row of `source` (a table or a CTE)."""
        engine = {
            "stream_id": literal(stream_id, Integer),
            "seq": seq,
            "kind": literal(kind, String) if isinstance(kind, str) else kind(source.c),
            "actor_id": literal(actor.id if actor else None, Integer),
            "actor_username": literal(actor.username if actor else None, String),
            "message": literal(message, String),
            "at": literal(at, self.event.__table__.c.at.type),
        }
        result = {}
        for name in _names(self.event):
            if name == "id":
                continue
            if name in engine:
                result[name] = engine[name]
            elif name == self.hold_ref:
                result[name] = source.c.id
            elif name == self.holder_name:
                result[name] = func.coalesce(
                    select(User.username).where(User.id == source.c[self.holder]).scalar_subquery(),
                    "(deleted)",
                )
            else:
                result[name] = source.c[name]
        return result

    def event_from(
        self,
        hold: Base,
        *,
        kind: str,
        actor: User | None,
        message: str | None,
        at: datetime,
        holder_name: str | None,
    ) -> Base:
        """The event recording `kind` for `hold`, filled like `event_columns` (no seq yet)."""
        engine = {
            "kind": kind,
            "actor_id": actor.id if actor else None,
            "actor_username": actor.username if actor else None,
            "message": message,
            "at": at,
        }
        values = {}
        for name in _names(self.event):
            if name in ("id", "stream_id", "seq"):
                continue
            if name in engine:
                values[name] = engine[name]
            elif name == self.hold_ref:
                values[name] = hold.id
            elif name == self.holder_name:
                values[name] = holder_name or "(deleted)"
            else:
                values[name] = getattr(hold, name)
        return self.event(**values)


class HoldTaken(Exception):
    """A hold could not be taken: the database's uniqueness (or exclusion) refused it."""


# -- the general path: inside a transaction ---------------------------------------------------


async def create_stream(session: AsyncSession, scope: str) -> Stream:
    await insert_unless_exists(
        session, Stream, "scope", scope=scope, last_seq=0, purged_through_seq=0
    )
    return (await session.execute(select(Stream).where(Stream.scope == scope))).scalar_one()


async def get_stream(session: AsyncSession, stream_id: int) -> Stream | None:
    return await session.get(Stream, stream_id)


async def lock_stream(session: AsyncSession, stream_id: int) -> Stream:
    """The stream, its row locked until commit: this transaction's events come next."""
    query = (
        select(Stream)
        .where(Stream.id == stream_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one()


def append(session: AsyncSession, stream: Stream, events: Sequence[StreamEvent]) -> None:
    """Give `events` the locked stream's next seqs and add them to the transaction."""
    for event in events:
        stream.last_seq += 1
        event.stream_id = stream.id
        event.seq = stream.last_seq
        session.add(event)


async def newest_seq(session: AsyncSession, stream_id: int) -> int:
    query = select(Stream.last_seq).where(Stream.id == stream_id)
    return (await session.execute(query)).scalar_one_or_none() or 0


async def events_after(
    session: AsyncSession,
    model: type[StreamEvent],
    stream_id: int,
    after_seq: int,
    *,
    through_seq: int | None = None,
    limit: int | None = None,
) -> list:
    query = (
        select(model).where(model.stream_id == stream_id, model.seq > after_seq).order_by(model.seq)
    )
    if through_seq is not None:
        query = query.where(model.seq <= through_seq)
    if limit is not None:
        query = query.limit(limit)
    return list((await session.execute(query)).scalars().all())


async def purge_events_before(
    session: AsyncSession, model: type[StreamEvent], cutoff: datetime
) -> None:
    """Delete events older than `cutoff` and remember, per stream, up to which seq."""
    query = (
        select(model.stream_id, func.max(model.seq))
        .where(model.at < cutoff)
        .group_by(model.stream_id)
    )
    for stream_id, seq in (await session.execute(query)).all():
        await session.execute(delete(model).where(model.stream_id == stream_id, model.seq <= seq))
        await session.execute(
            update(Stream)
            .where(Stream.id == stream_id, Stream.purged_through_seq < seq)
            .values(purged_through_seq=seq)
        )


async def streams_behind(session: AsyncSession, consumer: str) -> list[tuple[int, str]]:
    """(id, scope) of the streams with events `consumer` has not processed yet."""
    position = func.coalesce(StreamCursor.seq, 0)
    query = (
        select(Stream.id, Stream.scope)
        .outerjoin(
            StreamCursor,
            (StreamCursor.stream_id == Stream.id) & (StreamCursor.consumer == consumer),
        )
        .where(Stream.last_seq > position)
        .order_by(Stream.id)
    )
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


async def claim_cursor(session: AsyncSession, consumer: str, stream_id: int) -> StreamCursor | None:
    """The consumer's cursor on the stream, locked until commit; None while another process
    holds it (PostgreSQL; SQLite's write lock already excludes the others)."""
    await insert_unless_exists(
        session, StreamCursor, None, consumer=consumer, stream_id=stream_id, seq=0
    )
    query = (
        select(StreamCursor)
        .where(StreamCursor.consumer == consumer, StreamCursor.stream_id == stream_id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one_or_none()


# -- the hot path: one statement -------------------------------------------------------------


def _active(actor: User):
    """The actor's row if they are still active, key-share locked: a deactivation (which locks
    the row for update first) waits for this write, or this write sees it."""
    return (
        select(User.id)
        .where(User.id == actor.id, User.active.is_(True))
        .with_for_update(read=True, key_share=True)
        .cte("actor")
    )


def _advance(stream_id: int, count: int, gate, guard: ColumnElement[bool] | None):
    condition = (Stream.id == stream_id) & exists(select(gate.c[0]))
    if guard is not None:
        condition &= guard
    return (
        update(Stream)
        .where(condition)
        .values(last_seq=Stream.last_seq + count)
        .returning((Stream.last_seq - count).label("base"))
        .cte("stream")
    )


def _events(table: HoldTable, rows: list) -> list:
    return [table.event(**dict(row)) for row in rows]


async def _may_write(session: AsyncSession, actor: User, guard) -> bool:
    """SQLite: the actor is active and the guard holds (the transaction has the write lock)."""
    if await session.scalar(select(User.active).where(User.id == actor.id)) is not True:
        return False
    return guard is None or bool(await session.scalar(select(guard)))


async def _advance_sqlite(session: AsyncSession, stream_id: int, count: int) -> int:
    """Take `count` seqs; returns the seq before the first."""
    query = (
        update(Stream)
        .where(Stream.id == stream_id)
        .values(last_seq=Stream.last_seq + count)
        .returning(Stream.last_seq)
    )
    return (await session.execute(query)).scalar_one() - count


async def insert_holds(
    db: Database,
    table: HoldTable,
    *,
    stream_id: int,
    actor: User,
    rows: list[dict[str, Any]],
    kind: str,
    at: datetime,
    guard: ColumnElement[bool] | None = None,
) -> list | None:
    """Take these holds and record `kind` for each (with the seq as token, if the table has
    one). Returns the events in seq order; None — nothing written — when the actor is no longer
    active or `guard` is false. Raises HoldTaken when the database refuses a hold.
    """
    try:
        if db.dialect == "postgresql":
            return await _insert_holds_postgresql(
                db, table, stream_id, actor, rows, kind, at, guard
            )
        hold = table.hold.__table__
        async with db.transaction() as session:
            if not await _may_write(session, actor, guard):
                return None
            base = await _advance_sqlite(session, stream_id, len(rows))
            given = [
                {**row, **({table.token: base + index} if table.token else {})}
                for index, row in enumerate(rows, 1)
            ]
            ids = list((await session.execute(insert(hold).returning(hold.c.id), given)).scalars())
            seq = (
                hold.c[table.token]
                if table.token
                else base + func.row_number().over(order_by=hold.c.id)
            )
            columns = table.event_columns(
                hold, stream_id=stream_id, seq=seq, kind=kind, actor=actor, message=None, at=at
            )
            recorded = insert(table.event.__table__).from_select(
                list(columns), select(*columns.values()).where(hold.c.id.in_(ids))
            )
            result = await session.execute(recorded.returning(*table.event.__table__.c))
            return sorted(_events(table, result.mappings()), key=lambda event: event.seq)
    except IntegrityError as error:
        raise HoldTaken(str(error.orig)) from None


async def _insert_holds_postgresql(db, table, stream_id, actor, rows, kind, at, guard):
    hold = table.hold.__table__
    names = list(rows[0])
    stream = _advance(stream_id, len(rows), _active(actor), guard)
    given = values(
        *(column(name, hold.c[name].type) for name in names),
        column("ord", Integer),
        name="given",
    ).data([(*(row[name] for name in names), index) for index, row in enumerate(rows, 1)])
    # Cast: VALUES gives an untyped NULL the type text.
    targets, sources = list(names), [cast(given.c[name], hold.c[name].type) for name in names]
    if table.token:
        targets.append(table.token)
        sources.append(stream.c.base + given.c.ord)
    held = (
        insert(hold)
        .from_select(targets, select(*sources).select_from(stream).join(given, true()))
        .returning(*hold.c)
        .cte("held")
    )
    seq = (
        held.c[table.token]
        if table.token
        else select(stream.c.base).scalar_subquery() + func.row_number().over(order_by=held.c.id)
    )
    columns = table.event_columns(
        held, stream_id=stream_id, seq=seq, kind=kind, actor=actor, message=None, at=at
    )
    recorded = (
        insert(table.event.__table__)
        .from_select(list(columns), select(*columns.values()).select_from(held))
        .returning(*table.event.__table__.c)
        .cte("recorded")
    )
    async with db.autocommit() as connection:
        result = await connection.execute(select(recorded).order_by(recorded.c.seq))
        return _events(table, result.mappings()) or None


async def change_holds(
    db: Database,
    table: HoldTable,
    *,
    stream_id: int,
    actor: User,
    where: ColumnElement[bool],
    expected: int,
    action: str,
    kind: str | Callable[[Any], ColumnElement],
    at: datetime,
    message: str | None = None,
    changes: dict[str, Any] | None = None,
    guard: ColumnElement[bool] | None = None,
) -> list | None:
    """Record `kind` for each hold matching `where`, and `delete` the holds, `update` them
    with `changes`, or only `note` them.

    All or nothing: returns the events in seq order, or None — nothing written — when not
    exactly `expected` holds matched (or the actor is no longer active, or `guard` is false).
    """
    hold = table.hold.__table__
    if db.dialect == "postgresql":
        stream = _advance(stream_id, expected, _active(actor), guard)
        started = exists(select(stream.c.base))
        if action == "delete":
            matched = delete(hold).where(where, started).returning(*hold.c).cte("held")
        elif action == "update":
            matched = (
                update(hold).where(where, started).values(**changes).returning(*hold.c).cte("held")
            )
        else:
            matched = (
                select(hold)
                .where(where, started)
                .with_for_update(read=True, key_share=True)
                .cte("held")
            )
        seq = stream.c.base + func.row_number().over(order_by=matched.c.id)
        columns = table.event_columns(
            matched, stream_id=stream_id, seq=seq, kind=kind, actor=actor, message=message, at=at
        )
        recorded = (
            insert(table.event.__table__)
            .from_select(
                list(columns),
                select(*columns.values()).select_from(matched).join(stream, true()),
            )
            .returning(*table.event.__table__.c)
            .cte("recorded")
        )
        counted = select(func.count()).select_from(recorded).scalar_subquery()
        check = select(getattr(func, HOLD_CHECK_FUNCTION)(counted == expected).label("ok")).cte(
            "checked"
        )
        query = (
            select(recorded)
            .select_from(check)
            .outerjoin(recorded, check.c.ok)
            .order_by(recorded.c.seq)
        )
        try:
            async with db.autocommit() as connection:
                result = await connection.execute(query)
                return _events(table, result.mappings())
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) == HOLD_CHECK_SQLSTATE:
                return None
            raise
    async with db.transaction() as session:
        if not await _may_write(session, actor, guard):
            return None
        ids = list(
            (await session.execute(select(hold.c.id).where(where).order_by(hold.c.id))).scalars()
        )
        if len(ids) != expected:
            return None
        if action == "update":
            await session.execute(update(hold).where(hold.c.id.in_(ids)).values(**changes))
        base = await _advance_sqlite(session, stream_id, expected)
        seq = base + func.row_number().over(order_by=hold.c.id)
        columns = table.event_columns(
            hold, stream_id=stream_id, seq=seq, kind=kind, actor=actor, message=message, at=at
        )
        event_rows = (
            await session.execute(
                insert(table.event.__table__)
                .from_select(list(columns), select(*columns.values()).where(hold.c.id.in_(ids)))
                .returning(*table.event.__table__.c)
            )
        ).mappings()
        events = sorted(_events(table, event_rows), key=lambda event: event.seq)
        if action == "delete":
            await session.execute(delete(hold).where(hold.c.id.in_(ids)))
        return events
