"""Changes on a stream, as every area's events share them: what happened, to whose hold, by whom.

An area plugs its event table in with an `EventSource`: the feed, replay, the bus encoding and
retention come from here. What an event carries on the bus is derived from its model's
columns, so a column added to the table travels without further code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import DateTime
from sqlalchemy.ext.asyncio import AsyncSession

from db import streams as store
from db.base import UTCDateTime
from db.streams import HoldTable
from domain.errors import BadUserInput
from domain.people import UserRef, missing_user, user_refs


@dataclass(frozen=True, eq=False)
class Change:
    """A stored event with the people it names (`holder`: whose hold it is)."""

    event: Any
    holder: UserRef | None
    actor: UserRef | None

    @property
    def seq(self) -> int:
        return self.event.seq


Mailer = Callable[[AsyncSession, int, list[Change]], Awaitable[None]]


@dataclass(eq=False)
class EventSource:
    """An area's events: the table, and which of its columns name the holder.

    `scope` is the prefix of the area's stream scopes (`locks` for `locks:<project>`). An area
    that sends mail about its events sets `mail`: it runs for every committed event, once per
    cluster, outside the write (see domain.notify).
    """

    scope: str
    table: HoldTable
    mail: Mailer | None = None
    _columns: list[tuple[str, bool]] = field(init=False)

    def __post_init__(self) -> None:
        self._columns = [
            (column.key, isinstance(column.type, DateTime | UTCDateTime))
            for column in self.table.event.__table__.c
        ]

    @property
    def model(self) -> type:
        return self.table.event

    def holder_of(self, event) -> tuple[int | None, str | None]:
        holder_id = getattr(event, self.table.holder, None)
        name = getattr(event, self.table.holder_name, None) if self.table.holder_name else None
        return holder_id, name

    # -- on the bus: one message per write, with every change it made ------------------------

    def encode(self, change: Change) -> bytes:
        """One change as JSON; a bus message is a JSON list of them (see `decode`)."""

        def ref(user: UserRef | None):
            return None if user is None else [user.id, user.username, user.role, user.active]

        event = change.event
        row = {}
        for name, is_time in self._columns:
            value = getattr(event, name)
            row[name] = value.isoformat() if is_time and value is not None else value
        return orjson.dumps(
            {"event": row, "holder": ref(change.holder), "actor": ref(change.actor)}
        )

    def decode(self, message: str) -> list[Change]:
        changes = []
        for item in orjson.loads(message):
            row = item["event"]
            for name, is_time in self._columns:
                if is_time and row.get(name) is not None:
                    row[name] = datetime.fromisoformat(row[name])
            holder, actor = item["holder"], item["actor"]
            changes.append(
                Change(
                    event=SimpleNamespace(**row),
                    holder=UserRef(*holder) if holder else None,
                    actor=UserRef(*actor) if actor else None,
                )
            )
        return changes

    # -- from the table ------------------------------------------------------------------------

    async def changes_of(
        self, session: AsyncSession, events: list, known: dict[int, UserRef] | None = None
    ) -> list[Change]:
        """The events with the people they name (read in one query, unless `known`)."""
        wanted = set()
        for event in events:
            wanted.add(self.holder_of(event)[0])
            wanted.add(event.actor_id)
        wanted.discard(None)
        people = dict(known or {})
        missing = wanted - set(people)
        if missing:
            people.update(await user_refs(session, missing))

        def ref(user_id: int | None, username: str | None) -> UserRef | None:
            if user_id is None:
                return None
            return people.get(user_id) or missing_user(user_id, username)

        return [
            Change(
                event=event,
                holder=ref(*self.holder_of(event)),
                actor=ref(event.actor_id, event.actor_username),
            )
            for event in events
        ]

    async def stored(
        self,
        session: AsyncSession,
        stream_id: int,
        after_seq: int,
        *,
        through_seq: int | None = None,
        limit: int | None = None,
    ) -> list[Change]:
        events = await store.events_after(
            session, self.model, stream_id, after_seq, through_seq=through_seq, limit=limit
        )
        return await self.changes_of(session, events)


def check_since(since: int | None, purged_through_seq: int, what: str = "state") -> None:
    """`since` must be a seq whose successors are all still stored."""
    if since is None:
        return
    if since < 0:
        raise BadUserInput("since must not be negative", field="since")
    if since < purged_through_seq:
        raise BadUserInput(
            f"events up to seq {purged_through_seq} are no longer kept: refetch the current "
            f"{what} and follow from its newest seq",
            field="since",
            reason="refetch",
            oldestSeq=purged_through_seq + 1,
        )
