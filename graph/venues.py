"""Events at venues in the GraphQL schema: venues, events, and their mutations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import UNSET
from strawberry.types import Info

from domain.venues import EventView, Venues
from graph.assets.inputs import values_of
from graph.assets.types import Connection
from graph.context import Context, decode_id
from graph.identity import User


def _venues(info: Info[Context, None]) -> Venues:
    return info.context.services.venues


@strawberry.type
class Venue:
    id: strawberry.ID
    name: str
    address: str | None

    @classmethod
    def of(cls, row) -> Venue:
        return cls(id=strawberry.ID(str(row.id)), name=row.name, address=row.address)


@strawberry.type
class Event:
    id: strawberry.ID
    title: str
    starts_at: datetime
    ends_at: datetime | None
    blocks_until: datetime = strawberry.field(
        description="Until when the venue is taken: endsAt, or startsAt plus the default "
        "length (the setting event_default_minutes when the event was written)."
    )
    venue: Venue
    description: str | None
    organiser: User

    @classmethod
    def of(cls, view: EventView) -> Event:
        event = view.event
        return cls(
            id=strawberry.ID(str(event.id)),
            title=event.title,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            blocks_until=event.blocks_until,
            venue=Venue.of(view.venue),
            description=event.description,
            organiser=User.of_ref(view.organiser),
        )


@strawberry.input
class CreateEventInput:
    title: str
    starts_at: datetime = strawberry.field(description="With a UTC offset.")
    ends_at: datetime | None = strawberry.field(
        default=UNSET,
        description="After startsAt; without it the venue is blocked for the default length.",
    )
    venue: str = strawberry.field(description="A venue's name (any case); new ones are made.")
    address: str | None = strawberry.field(
        default=UNSET, description="The address of a venue made by this call."
    )
    description: str | None = UNSET


@strawberry.input
class UpdateEventInput:
    title: str | None = UNSET
    starts_at: datetime | None = UNSET
    ends_at: datetime | None = strawberry.field(default=UNSET, description="null: no end.")
    venue: str | None = UNSET
    address: str | None = strawberry.field(
        default=UNSET, description="The address of a venue made by this call."
    )
    description: str | None = UNSET


@strawberry.input
class CreateVenueInput:
    name: str
    address: str | None = UNSET


@strawberry.type
class VenueQuery:
    @strawberry.field(
        description="Events not over by `from` (default: now) that start before "
        "`to`, at the venue named (any case), by start time."
    )
    async def events(
        self,
        info: Info[Context, None],
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
        venue: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Event]:
        await info.context.require_viewer()
        page = await _venues(info).events(
            since=from_, until=to, venue=venue, first=first, after=after
        )
        return Connection.of(page, Event.of)

    @strawberry.field
    async def event(self, info: Info[Context, None], id: strawberry.ID) -> Event | None:
        await info.context.require_viewer()
        view = await _venues(info).event(decode_id(id))
        return None if view is None else Event.of(view)

    @strawberry.field(description="Every venue, by name.")
    async def venues(self, info: Info[Context, None]) -> list[Venue]:
        await info.context.require_viewer()
        return [Venue.of(row) for row in await _venues(info).venues()]


@strawberry.type
class VenueMutation:
    @strawberry.mutation(description="Admins; CONFLICT when the name (any case) is taken.")
    async def create_venue(self, info: Info[Context, None], input: CreateVenueInput) -> Venue:
        actor = await info.context.require_viewer()
        return Venue.of(await _venues(info).create_venue(actor, values_of(input)))

    @strawberry.mutation(
        description="CONFLICT naming the other event when the venue is taken at that time."
    )
    async def create_event(self, info: Info[Context, None], input: CreateEventInput) -> Event:
        actor = await info.context.require_viewer()
        return Event.of(await _venues(info).create_event(actor, values_of(input)))

    @strawberry.mutation(description="The organiser or an admin; CONFLICT as for createEvent.")
    async def update_event(
        self, info: Info[Context, None], id: strawberry.ID, input: UpdateEventInput
    ) -> Event:
        actor = await info.context.require_viewer()
        return Event.of(await _venues(info).update_event(actor, decode_id(id), values_of(input)))

    @strawberry.mutation(description="The organiser or an admin; the event as it was.")
    async def delete_event(self, info: Info[Context, None], id: strawberry.ID) -> Event:
        actor = await info.context.require_viewer()
        return Event.of(await _venues(info).delete_event(actor, decode_id(id)))
