"""The write protocol every area's holds follow.

Two ways to write, the same events either way:

- **Hot writes** (take, release, renew, note a hold) are one statement each in `db` (see
  db/streams.py); an area calls them, and hands the events they return to `committed`, which
  names the people and publishes them. When a hot write returns None (a hold was not as the
  area expected, the actor is gone, a guard said no) nothing was written, and the area runs the
  same operation on the general path, which finds out why.
- **The general path** is one transaction (`transaction`, or `within` one the caller runs): the
  acting user's row is key-share locked and must be active, then the stream's row is locked, so
  every read under it is current; `Writer.record` appends events with the next seqs, and they
  are published after commit.

Lock order is always the user, then the stream, then the holds, on both paths.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db import streams as store
from db.engine import Database
from db.identity import User, get_user_by_username, lock_user
from db.streams import Stream
from domain.access import is_admin
from domain.errors import BadUserInput, Forbidden, NotFound, Unauthenticated
from domain.feeds import Feeds
from domain.people import UserRef
from domain.streams import Change, EventSource


@dataclass(eq=False)
class Writer:
    """Records events on one locked stream inside a transaction."""

    session: AsyncSession
    stream: Stream
    source: EventSource
    changes: list[Change] = field(default_factory=list)

    def record(
        self,
        hold,
        kind: str,
        *,
        holder: UserRef | None,
        actor: UserRef | None,
        at: datetime,
        message: str | None = None,
        given: dict[str, Any] | None = None,
    ) -> Change:
        event = self.source.table.event_from(
            hold,
            kind=kind,
            actor=actor,
            message=message,
            at=at,
            holder_name=holder.username if holder else None,
            given=given,
        )
        store.append(self.session, self.stream, [event])
        change = Change(event=event, holder=holder, actor=actor)
        self.changes.append(change)
        return change

    async def take(
        self,
        hold,
        kind: str,
        *,
        holder: UserRef | None,
        actor: UserRef | None,
        at: datetime,
        given: dict[str, Any] | None = None,
    ) -> Change:
        """Add a new hold, its token the seq of the event that records it."""
        token = self.source.table.token
        if token is not None:
            setattr(hold, token, self.stream.last_seq + 1)
        self.session.add(hold)
        await self.session.flush()
        return self.record(hold, kind, holder=holder, actor=actor, at=at, given=given)


@dataclass(frozen=True)
class Holding:
    """One thing someone holds, in any area."""

    area: str
    id: int
    what: str
    since: datetime
    until: datetime | None


MAX_HOLDINGS = 500


class Holds:
    def __init__(self, db: Database, feeds: Feeds) -> None:
        self.db = db
        self.feeds = feeds
        self.sources: list[EventSource] = []
        """Every area's holds, for `held_by` (each area adds itself with `serve`)."""

    def serve(self, source: EventSource) -> None:
        if source not in self.sources:
            self.sources.append(source)

    async def held_by(
        self, actor: User, username: str | None = None, first: int | None = None
    ) -> list[Holding]:
        """Everything one person holds, in every area, newest first, in one query: the
        actor's own, or (admins) anyone's."""
        limit = MAX_HOLDINGS if first is None else first
        if not 0 <= limit <= MAX_HOLDINGS:
            raise BadUserInput(f"first must be between 0 and {MAX_HOLDINGS}", field="first")
        async with self.db.read() as session:
            user_id = actor.id
            if username is not None and username != actor.username:
                if not is_admin(actor):
                    raise Forbidden("only an admin may see what someone else holds")
                user = await get_user_by_username(session, username)
                if user is None:
                    raise NotFound(f"no user {username!r}", field="username")
                user_id = user.id
            rows = await store.holds_of_user(
                session, [source.table for source in self.sources], user_id, limit
            )
        return [Holding(row.area, row.id, row.what, row.since, row.until) for row in rows]

    async def committed(
        self, source: EventSource, stream_id: int, events: list, actor: User
    ) -> list[Change]:
        """The changes a hot write committed, with the people they name; published."""
        me = UserRef.of(actor)
        if all(source.holder_of(event)[0] in (None, actor.id) for event in events):
            changes = [
                Change(
                    event=event,
                    holder=me if source.holder_of(event)[0] is not None else None,
                    actor=me,
                )
                for event in events
            ]
        else:
            async with self.db.read() as session:
                changes = await source.changes_of(session, events, {actor.id: me})
        await self.feeds.publish(source, stream_id, changes)
        return changes

    async def within(self, session: AsyncSession, source: EventSource, stream_id: int) -> Writer:
        """A writer on `stream_id` in the caller's transaction (the stream's row is locked
        now); the caller publishes its changes after commit with `publish`."""
        return Writer(session, await store.lock_stream(session, stream_id), source)

    @asynccontextmanager
    async def transaction(
        self, source: EventSource, stream_id: int, *, actor: User | None
    ) -> AsyncIterator[Writer]:
        """The general path: the actor (if any) active and key-share locked, then the stream's
        row locked, for one transaction; what the writer recorded is published after commit."""
        async with self.db.transaction() as session:
            if actor is not None:
                current = await lock_user(session, actor.id, exclusive=False)
                if current is None or not current.active:
                    raise Unauthenticated("your account is no longer active")
            writer = await self.within(session, source, stream_id)
            yield writer
            await session.flush()
        await self.publish(writer)

    async def publish(self, *writers: Writer) -> None:
        for writer in writers:
            await self.feeds.publish(writer.source, writer.stream.id, writer.changes)
