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
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import asyncpg
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
    null,
    select,
    true,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from db.base import Base, UTCDateTime, insert_unless_exists
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


def constant(text: str) -> ColumnElement[str]:
    """A string from the code, written into the SQL (an anonymous bound literal in a CTE that
    is read twice confuses SQLAlchemy's statement cache)."""
    return literal_column("'" + text.replace("'", "''") + "'", String)


def _names(model: type[Base]) -> list[str]:
    return [column.key for column in model.__table__.c]


@dataclass(frozen=True)
class Shown:
    """How an area's holds read beside every other area's: its name, what is held (SQL over
    the hold row: a column or a scalar subquery), and the hold columns of since and until."""

    area: str
    what: ColumnElement[str]
    since: str
    until: str | None = None
    current: ColumnElement[bool] | None = None
    """Which rows are holds now (a completed part's claim stays, but is no longer held)."""


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
    given: tuple[str, ...] = ()
    """Event columns the area gives with each event instead of the hold (e.g. a part's stage
    after the change): on hot writes the parameters `hf_given_<column>`."""
    shown: Shown | None = None
    """How a hold reads in the list of everything one person holds."""

    def __post_init__(self) -> None:
        hold_columns = set(_names(self.hold))
        for name in _names(self.event):
            if name in ENGINE_COLUMNS or name in (self.hold_ref, self.holder_name, *self.given):
                continue
            if name not in hold_columns:
                raise TypeError(f"{self.event.__name__}.{name} has no source in {self.hold}")

    def event_columns(
        self, source, *, seq: ColumnElement, kind: str | Callable[[Any], ColumnElement]
    ) -> dict[str, ColumnElement]:
        """SQL for each event column, from a hold row of `source` (a table or a CTE); the
        engine's values are the parameters `hf_stream`, `hf_actor`, `hf_actor_name`,
        `hf_message` and `hf_at`."""
        engine = {
            "stream_id": bindparam("hf_stream", type_=Integer),
            "seq": seq,
            "kind": constant(kind) if isinstance(kind, str) else kind(source.c),
            "actor_id": bindparam("hf_actor", type_=Integer),
            "actor_username": bindparam("hf_actor_name", type_=String),
            "message": bindparam("hf_message", type_=String),
            "at": bindparam("hf_at", type_=self.event.__table__.c.at.type),
        }
        result = {}
        for name in _names(self.event):
            if name == "id":
                continue
            if name in engine:
                result[name] = engine[name]
            elif name in self.given:
                column_type = self.event.__table__.c[name].type
                result[name] = bindparam(f"hf_given_{name}", type_=column_type)
            elif name == self.hold_ref:
                result[name] = source.c.id
            elif name == self.holder_name:
                result[name] = func.coalesce(
                    select(User.username).where(User.id == source.c[self.holder]).scalar_subquery(),
                    constant("(deleted)"),
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
        given: dict[str, Any] | None = None,
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
            elif name in self.given:
                values[name] = (given or {}).get(name)
            elif name == self.hold_ref:
                values[name] = hold.id
            elif name == self.holder_name:
                held = getattr(hold, self.holder) is not None
                values[name] = holder_name or ("(deleted)" if held else None)
            else:
                values[name] = getattr(hold, name)
        return self.event(**values)


async def holds_of_user(
    session: AsyncSession, tables: Sequence[HoldTable], user_id: int, limit: int
) -> list:
    """Everything `user_id` holds in every area's hold table, newest first, in one query:
    rows of (area, id, what, since, until)."""
    selects = []
    for table in tables:
        shown, hold = table.shown, table.hold.__table__
        if shown is None:
            continue
        until = hold.c[shown.until] if shown.until else null()
        selects.append(
            select(
                constant(shown.area).label("area"),
                hold.c.id.label("id"),
                shown.what.label("what"),
                hold.c[shown.since].label("since"),
                type_coerce(until, UTCDateTime()).label("until"),
            ).where(
                hold.c[table.holder] == user_id,
                *([shown.current] if shown.current is not None else []),
            )
        )
    if not selects:
        return []
    everything = union_all(*selects).subquery("held")
    query = select(everything).order_by(everything.c.since.desc(), everything.c.area).limit(limit)
    return list((await session.execute(query)).all())


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


@dataclass(eq=False)
class HotWrite:
    """One kind of hot write on a hold table, its SQL built once and run with parameters.

    `action`: `take` inserts holds (their token the seq of their event); `delete`, `update`
    (the `columns`, from parameters `set_<column>`) and `note` (change nothing) act on the
    holds matching `where`. `guard` must hold, or nothing is written. `where` and
    `guard` are built with bound parameters, passed to `run` by name.

    Built once because SQLAlchemy compiles a statement per distinct shape and caches the result
    only for statements it can key: building this CTE afresh costs more than running it.
    """

    table: HoldTable
    action: str
    kind: str | Callable[[Any], ColumnElement]
    columns: tuple[str, ...] = ()
    """`take`: the hold columns each row gives; `update`: the columns it sets."""
    where: ColumnElement[bool] | None = None
    guard: ColumnElement[bool] | None = None
    _built: dict[tuple, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action == "take" and self.table.token is None:
            raise TypeError("a take needs a hold table with a token column")

    def statement(self, dialect: str, part: str, rows: int = 0):
        key = (dialect, part, rows)
        if key not in self._built:
            self._built[key] = getattr(self, f"_{part}")(rows)
        return self._built[key]

    # PostgreSQL: one statement, in autocommit.

    def _postgresql(self, rows: int):
        hold = self.table.hold.__table__
        gate = (
            select(User.id)
            .where(User.id == bindparam("hf_actor", type_=Integer), User.active.is_(True))
            .with_for_update(read=True, key_share=True)
            .cte("actor")
        )
        count = bindparam("hf_count", type_=Integer)
        condition = (Stream.id == bindparam("hf_stream", type_=Integer)) & exists(select(gate.c.id))
        if self.guard is not None:
            condition &= self.guard
        stream = (
            update(Stream)
            .where(condition)
            .values(last_seq=Stream.last_seq + count)
            .returning((Stream.last_seq - count).label("base"))
            .cte("stream")
        )
        if self.action == "take":
            held = self._taken(hold, stream, rows)
            seq = held.c[self.table.token]
            source = select().select_from(held)
        else:
            started = exists(select(stream.c.base))
            if self.action == "delete":
                held = delete(hold).where(self.where, started).returning(*hold.c)
            elif self.action == "update":
                held = (
                    update(hold)
                    .where(self.where, started)
                    .values({name: bindparam(f"set_{name}") for name in self.columns})
                    .returning(*hold.c)
                )
            else:
                held = (
                    select(hold)
                    .where(self.where, started)
                    .with_for_update(read=True, key_share=True)
                )
            held = held.cte("held")
            seq = stream.c.base + func.row_number().over(order_by=held.c.id)
            source = select().select_from(held).join(stream, true())
        columns = self.table.event_columns(held, seq=seq, kind=self.kind)
        recorded = (
            insert(self.table.event.__table__)
            .from_select(list(columns), source.add_columns(*columns.values()))
            .returning(*self.table.event.__table__.c)
            .cte("recorded")
        )
        counted = select(func.count()).select_from(recorded).scalar_subquery()
        check = select(getattr(func, HOLD_CHECK_FUNCTION)(counted == count).label("ok")).cte(
            "checked"
        )
        return (
            select(recorded)
            .select_from(check)
            .outerjoin(recorded, check.c.ok)
            .order_by(recorded.c.seq)
        )

    def _taken(self, hold, stream, rows: int):
        names = self.columns
        given = union_all(
            *(
                select(
                    *(
                        bindparam(f"hf_{index}_{name}", type_=hold.c[name].type).label(name)
                        for name in names
                    ),
                    literal_column(str(index + 1), Integer).label("ord"),
                )
                for index in range(rows)
            )
        ).subquery("given")
        targets = [*names, self.table.token]
        sources = [*(given.c[name] for name in names), stream.c.base + given.c.ord]
        return (
            insert(hold)
            .from_select(targets, select(*sources).select_from(stream).join(given, true()))
            .returning(*hold.c)
            .cte("held")
        )

    # SQLite: a few statements in one BEGIN IMMEDIATE transaction (it holds the write lock).

    def _may_write(self, rows: int):
        active = (
            select(User.id)
            .where(User.id == bindparam("hf_actor", type_=Integer), User.active.is_(True))
            .exists()
        )
        return select(active & self.guard if self.guard is not None else active)

    def _advance(self, rows: int):
        count = bindparam("hf_count", type_=Integer)
        return (
            update(Stream)
            .where(Stream.id == bindparam("hf_stream", type_=Integer))
            .values(last_seq=Stream.last_seq + count)
            .returning(Stream.last_seq - count)
        )

    def _matched(self, rows: int):
        hold = self.table.hold.__table__
        return select(hold.c.id).where(self.where).order_by(hold.c.id)

    def _insert(self, rows: int):
        hold = self.table.hold.__table__
        return insert(hold).returning(hold.c.id, sort_by_parameter_order=True)

    def _changed(self, rows: int):
        hold = self.table.hold.__table__
        return (
            update(hold)
            .where(hold.c.id.in_(bindparam("hf_ids", expanding=True)))
            .values({name: bindparam(f"set_{name}") for name in self.columns})
        )

    def _events(self, rows: int):
        hold = self.table.hold.__table__
        base = bindparam("hf_base", type_=Integer)
        seq = (
            hold.c[self.table.token]
            if self.action == "take"
            else base + func.row_number().over(order_by=hold.c.id)
        )
        columns = self.table.event_columns(hold, seq=seq, kind=self.kind)
        chosen = select(*columns.values()).where(hold.c.id.in_(bindparam("hf_ids", expanding=True)))
        return (
            insert(self.table.event.__table__)
            .from_select(list(columns), chosen)
            .returning(*self.table.event.__table__.c)
        )

    def _deleted(self, rows: int):
        hold = self.table.hold.__table__
        return delete(hold).where(hold.c.id.in_(bindparam("hf_ids", expanding=True)))


async def _fetch_postgresql(db: Database, write: HotWrite, rows: int, values: dict) -> list:
    return await db.fetch(write.statement("postgresql", "postgresql", rows), values)


def _events_of(table: HoldTable, rows) -> list:
    """The recorded events as plain records (attribute access like the model's rows, without
    the cost of ORM instances), in seq order."""
    return sorted((SimpleNamespace(**dict(row)) for row in rows), key=lambda event: event.seq)


async def run_hot(
    db: Database,
    write: HotWrite,
    *,
    stream_id: int,
    actor: User,
    at: datetime,
    expected: int = 0,
    rows: list[dict[str, Any]] = (),
    message: str | None = None,
    params: dict[str, Any] | None = None,
) -> list | None:
    """Run a hot write: the events it recorded, in seq order; or None — nothing written — when
    the actor is no longer active, the guard is false, or not exactly `expected` holds matched
    (`take`: `rows` is what to insert). Raises HoldTaken when the database refuses a hold."""
    count = len(rows) if write.action == "take" else expected
    values = {
        **(params or {}),
        "hf_stream": stream_id,
        "hf_actor": actor.id,
        "hf_actor_name": actor.username,
        "hf_message": message,
        "hf_at": at,
        "hf_count": count,
    }
    if db.dialect == "postgresql":
        for index, row in enumerate(rows):
            values.update({f"hf_{index}_{name}": value for name, value in row.items()})
        try:
            records = await _fetch_postgresql(db, write, len(rows), values)
        except asyncpg.IntegrityConstraintViolationError as error:
            raise HoldTaken(str(error)) from None
        except asyncpg.PostgresError as error:
            if error.sqlstate == HOLD_CHECK_SQLSTATE:
                return None
            raise
        return _events_of(write.table, records) or None
    try:
        return await _run_hot_sqlite(db, write, values, rows, count)
    except IntegrityError as error:
        raise HoldTaken(str(error.orig)) from None


async def _run_hot_sqlite(db: Database, write: HotWrite, values: dict, rows, count: int):
    table = write.table
    async with db.transaction() as session:
        if not await session.scalar(write.statement("sqlite", "may_write"), values):
            return None
        if write.action == "take":
            base = (await session.execute(write.statement("sqlite", "advance"), values)).scalar()
            given = [{**row, table.token: base + index} for index, row in enumerate(rows, 1)]
            inserted = await session.execute(write.statement("sqlite", "insert"), given)
            ids = list(inserted.scalars())
        else:
            ids = list(
                (await session.execute(write.statement("sqlite", "matched"), values)).scalars()
            )
            if len(ids) != count:
                return None
            if write.action == "update":
                await session.execute(
                    write.statement("sqlite", "changed"), {**values, "hf_ids": ids}
                )
            base = (await session.execute(write.statement("sqlite", "advance"), values)).scalar()
        recorded = await session.execute(
            write.statement("sqlite", "events"), {**values, "hf_ids": ids, "hf_base": base}
        )
        events = _events_of(table, recorded.mappings())
        if write.action == "delete":
            await session.execute(write.statement("sqlite", "deleted"), {"hf_ids": ids})
        return events
