"""Events at venues: anyone signed in publishes, lists and reads events; the organiser or an
admin edits and deletes them. Venues are made on first use (an event naming a new venue) or by
admins, and are unique by name whatever the case.

Two events at one venue never overlap: each blocks its venue over [start, blocks_until), its end
or, without one, its start plus `default_minutes` (the runtime setting `event_default_minutes`,
as it is when the event is written). The database refuses an overlap (db/venues.py), so a race
has one winner; the refusal becomes CONFLICT naming the other event, read again after the
failed transaction rolled back. Every change is audited in its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import venues as store
from db.base import utcnow
from db.engine import Database
from db.identity import User
from db.venues import Venue, VenueEvent
from domain import audit
from domain.access import is_admin, require_admin
from domain.checks import Invalid, Kind, invalid, text
from domain.errors import BadUserInput, Conflict, Forbidden, NotFound
from domain.pagination import Page, decode_position, encode_position, page_size
from domain.people import UserRef, missing_user, user_refs

DEFAULT_EVENT_MINUTES = 120
CURSOR_KIND = "event"


def _moment(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise Invalid("must be a date-time")
    if value.tzinfo is None or value.utcoffset() is None:
        raise Invalid("needs a UTC offset (e.g. 2026-12-01T18:00:00Z)")
    return value.astimezone(UTC)


VENUE = Kind(
    "venue",
    Venue,
    {"name": text(200, required=True), "address": text(500)},
    frozenset({"name"}),
    {},
)

EVENT = Kind(
    "event",
    VenueEvent,
    {
        "title": text(200, required=True),
        "starts_at": _moment,
        "ends_at": _moment,
        "venue": text(200, required=True),
        "address": text(500),
        "description": text(10_000),
    },
    frozenset({"title", "starts_at", "venue"}),
    {},
)


@dataclass(frozen=True)
class EventView:
    event: VenueEvent
    venue: Venue
    organiser: UserRef


def describe_venue(venue: Venue) -> dict[str, Any]:
    return {"id": str(venue.id), "name": venue.name, "address": venue.address}


def describe(event: VenueEvent, venue: Venue) -> dict[str, Any]:
    """An event as the API names its fields, for audit entries."""
    return {
        "id": str(event.id),
        "title": event.title,
        "startsAt": event.starts_at,
        "endsAt": event.ends_at,
        "blocksUntil": event.blocks_until,
        "venue": venue.name,
        "description": event.description,
        "organiser": event.organiser_username,
    }


class Venues:
    def __init__(self, db: Database, default_minutes: int = DEFAULT_EVENT_MINUTES) -> None:
        self.db = db
        self.default_minutes = default_minutes
        """How long an event without an end blocks its venue (set from the runtime setting)."""

    # -- venues ---------------------------------------------------------------------------------

    async def venues(self) -> list[Venue]:
        async with self.db.read() as session:
            return await store.all_venues(session)

    async def create_venue(self, actor: User, values: dict) -> Venue:
        """Admins; CONFLICT naming `name` when a venue has that name (in any case)."""
        require_admin(actor)
        checked = VENUE.checked(values, creating=True)
        async with self.db.transaction() as session:
            if not await store.insert_venue_unless_exists(
                session, checked["name"], checked.get("address")
            ):
                found = await store.venue_named(session, checked["name"])
                raise Conflict(
                    f"there is a venue named {found.name!r} already",
                    field="name",
                    venue={"id": str(found.id), "name": found.name},
                )
            venue = await store.venue_named(session, checked["name"])
            audit.record(
                session,
                actor=actor,
                action="create",
                resource_type="venue",
                resource_id=venue.id,
                after=describe_venue(venue),
            )
        return venue

    async def _venue_for(
        self, session: AsyncSession, actor: User, name: str, address: str | None
    ) -> Venue:
        """The venue of that name, made (and audited) when there is none: race-safe, since the
        insert does nothing when another transaction made it first."""
        venue = await store.venue_named(session, name)
        if venue is not None:
            return venue
        created = await store.insert_venue_unless_exists(session, name, address)
        venue = await store.venue_named(session, name)
        if created:
            audit.record(
                session,
                actor=actor,
                action="create",
                resource_type="venue",
                resource_id=venue.id,
                after=describe_venue(venue),
            )
        return venue

    # -- reads ----------------------------------------------------------------------------------

    async def _views(self, session: AsyncSession, events: list[VenueEvent]) -> list[EventView]:
        venues = await store.venues_by_id(session, {event.venue_id for event in events})
        people = await user_refs(
            session, {event.organiser_id for event in events if event.organiser_id is not None}
        )
        return [
            EventView(
                event,
                venues[event.venue_id],
                people.get(event.organiser_id)
                or missing_user(event.organiser_id or 0, event.organiser_username),
            )
            for event in events
        ]

    async def event(self, event_id: int) -> EventView | None:
        async with self.db.read() as session:
            event = await store.get_event(session, event_id)
            return None if event is None else (await self._views(session, [event]))[0]

    async def events(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        venue: str | None = None,
        first: int | None = None,
        after: str | None = None,
        now: datetime | None = None,
    ) -> Page[EventView]:
        """Events not over by `since` (default: now) that start before `until`, at the venue
        named (any case), by start time; keyset pages."""
        limit = page_size(first)
        for name, moment in (("from", since), ("to", until)):
            if moment is not None and moment.tzinfo is None:
                raise BadUserInput(f"{name} needs a UTC offset", field=name)
        since = since or now or utcnow()
        if until is not None and until < since:
            raise BadUserInput("to must not be earlier than from", field="to")
        position = decode_position(CURSOR_KIND, after)
        start_key = None
        if position is not None:
            value, key = position
            try:
                start_key = (datetime.fromisoformat(str(value)), key)
            except ValueError:
                raise BadUserInput("after is not a cursor from this list", field="after") from None
            if start_key[0].tzinfo is None:
                raise BadUserInput("after is not a cursor from this list", field="after")
        async with self.db.read() as session:
            rows, total = await store.event_page(
                session,
                since=since,
                until=until,
                venue=venue.strip() if venue else None,
                after=start_key,
                limit=limit + 1,
            )
            views = await self._views(session, rows[:limit])
        return Page(
            items=views,
            cursors=[
                encode_position(CURSOR_KIND, v.event.starts_at.isoformat(), v.event.id)
                for v in views
            ],
            total=total,
            has_next=len(rows) > limit,
        )

    # -- writes ---------------------------------------------------------------------------------

    def _window(self, starts_at: datetime, ends_at: datetime | None) -> datetime:
        if ends_at is not None:
            if ends_at <= starts_at:
                raise invalid("ends_at", "must be after startsAt")
            return ends_at
        return starts_at + timedelta(minutes=self.default_minutes)

    async def _refused(
        self, venue_name: str, starts_at: datetime, blocks_until: datetime, other_than: int | None
    ) -> Conflict:
        """The CONFLICT for an overlap the database refused, naming the event in the way (read
        after the failed transaction, so it is one that committed)."""
        async with self.db.read() as session:
            venue = await store.venue_named(session, venue_name)
            other = None
            if venue is not None:
                other = await store.overlapping(
                    session, venue.id, starts_at, blocks_until, other_than=other_than
                )
        if other is None:
            return Conflict(f"{venue_name} was just taken at that time: try again")
        return Conflict(
            f"{venue.name} is taken then by {other.title!r} "
            f"({other.starts_at.isoformat()} to {other.blocks_until.isoformat()})",
            event={
                "id": str(other.id),
                "title": other.title,
                "startsAt": other.starts_at.isoformat(),
                "blocksUntil": other.blocks_until.isoformat(),
            },
        )

    async def create_event(self, actor: User, values: dict) -> EventView:
        """Anyone signed in; the venue is made when it is new (with the address given)."""
        checked = EVENT.checked(values, creating=True)
        starts_at, ends_at = checked["starts_at"], checked.get("ends_at")
        blocks_until = self._window(starts_at, ends_at)
        try:
            async with self.db.transaction() as session:
                venue = await self._venue_for(
                    session, actor, checked["venue"], checked.get("address")
                )
                event = VenueEvent(
                    title=checked["title"],
                    starts_at=starts_at,
                    ends_at=ends_at,
                    blocks_until=blocks_until,
                    venue_id=venue.id,
                    description=checked.get("description"),
                    organiser_id=actor.id,
                    organiser_username=actor.username,
                )
                session.add(event)
                await session.flush()
                audit.record(
                    session,
                    actor=actor,
                    action="create",
                    resource_type="event",
                    resource_id=event.id,
                    after=describe(event, venue),
                )
                view = EventView(event, venue, UserRef.of(actor))
        except IntegrityError as error:
            if not store.is_overlap(error):
                raise
            raise await self._refused(checked["venue"], starts_at, blocks_until, None) from None
        return view

    def _may_change(self, actor: User, event: VenueEvent, action: str) -> None:
        if event.organiser_id != actor.id and not is_admin(actor):
            raise Forbidden(
                f"only the organiser ({event.organiser_username}) or an admin may {action} it"
            )

    async def update_event(self, actor: User, event_id: int, values: dict) -> EventView:
        """The organiser or an admin: the fields given (a null endsAt or description clears
        it); the venue's blocked window is worked out again."""
        checked = EVENT.checked(values, creating=False)
        venue_name = None
        try:
            async with self.db.transaction() as session:
                event = await store.get_event(session, event_id, for_update=True)
                if event is None:
                    raise NotFound(f"no event with id {event_id}", field="id")
                self._may_change(actor, event, "change")
                venue = (await store.venues_by_id(session, {event.venue_id}))[event.venue_id]
                before = describe(event, venue)
                if "venue" in checked:
                    venue = await self._venue_for(
                        session, actor, checked["venue"], checked.get("address")
                    )
                venue_name = venue.name
                starts_at = checked.get("starts_at", event.starts_at)
                ends_at = checked.get("ends_at", event.ends_at)
                blocks_until = self._window(starts_at, ends_at)
                for name in ("title", "description"):
                    if name in checked:
                        setattr(event, name, checked[name])
                event.starts_at, event.ends_at = starts_at, ends_at
                event.blocks_until, event.venue_id = blocks_until, venue.id
                await session.flush()
                audit.record(
                    session,
                    actor=actor,
                    action="update",
                    resource_type="event",
                    resource_id=event.id,
                    before=before,
                    after=describe(event, venue),
                )
        except IntegrityError as error:
            if not store.is_overlap(error):
                raise
            raise await self._refused(venue_name, starts_at, blocks_until, event_id) from None
        return await self.event(event_id)

    async def delete_event(self, actor: User, event_id: int) -> EventView:
        """The organiser or an admin; the event as it was."""
        async with self.db.transaction() as session:
            event = await store.get_event(session, event_id, for_update=True)
            if event is None:
                raise NotFound(f"no event with id {event_id}", field="id")
            self._may_change(actor, event, "delete")
            [view] = await self._views(session, [event])
            audit.record(
                session,
                actor=actor,
                action="delete",
                resource_type="event",
                resource_id=event.id,
                before=describe(event, view.venue),
            )
            await store.remove_event(session, event)
        return view
