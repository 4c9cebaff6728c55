"""Parking in the GraphQL schema: lots, spots, bookings (park now, leave, reserve ahead,
cancel), history, the monthly summary, the CSV export, and each lot's live availability."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime, time
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from domain.errors import NotFound
from domain.pagination import Page
from domain.parking import BookingStatus, BookingView, LotMonth, LotView, Parking
from domain.streams import Change
from graph.assets.types import Connection
from graph.context import Context, decode_id
from graph.identity import User
from graph.jobs import Job
from graph.scalars import Long
from graph.shared_events import shared_payload

SpotBookingStatus = strawberry.enum(BookingStatus, name="SpotBookingStatus")


def _parking(info: Info[Context, None]) -> Parking:
    return info.context.services.parking


def _id(value: int) -> strawberry.ID:
    return strawberry.ID(str(value))


def _minutes(value: int | None) -> time | None:
    return None if value is None else time(value // 60, value % 60)


def _lots(info: Info[Context, None]) -> DataLoader:
    context = info.context
    found = context.loaders.get("parking")
    if found is None:
        parking = _parking(info)

        async def load(ids: list[int]) -> list[LotView | None]:
            views = {view.lot.id: view for view in await parking.lots(ids)}
            return [views.get(lot_id) for lot_id in ids]

        found = context.loaders["parking"] = DataLoader(load, cache=not context.long_lived)
    return found


@strawberry.type
class ParkingLot:
    id: strawberry.ID
    name: str
    address: str | None
    postcode: str | None
    price_per_hour: Decimal
    spot_count: int
    active: bool
    description: str | None
    opens_at: time | None = strawberry.field(
        description="In the lot's time zone; with closesAt null the lot is always open."
    )
    closes_at: time | None
    time_zone: str
    free: int = strawberry.field(description="Spots free right now.")
    occupied: int
    reserved: int = strawberry.field(
        description="Spots not occupied but held by a reservation that has not ended (a car "
        "parked now stays until it leaves, so such a spot cannot be parked in now)."
    )

    @classmethod
    def of(cls, view: LotView, counts: tuple[int, int, int, int] | None = None) -> ParkingLot:
        lot = view.lot
        free, occupied, reserved, spot_count = counts or (
            view.free,
            view.occupied,
            view.reserved,
            lot.spot_count,
        )
        return cls(
            id=_id(lot.id),
            name=lot.name,
            address=lot.address,
            postcode=lot.postcode,
            price_per_hour=lot.price_per_hour,
            spot_count=spot_count,
            active=lot.active,
            description=lot.description,
            opens_at=_minutes(lot.opens_at),
            closes_at=_minutes(lot.closes_at),
            time_zone=lot.time_zone,
            free=free,
            occupied=occupied,
            reserved=reserved,
        )

    @strawberry.field(description="The spots in use, with whether each is taken now.")
    async def spots(self, info: Info[Context, None]) -> list[ParkingSpot]:
        await info.context.require_viewer()
        found = await _parking(info).spots(int(self.id))
        return [
            ParkingSpot(
                id=_id(spot.id),
                number=spot.number,
                state=_state(booking),
                _lot_id=spot.lot_id,
            )
            for spot, booking in found
        ]


def _state(booking) -> str:
    if booking is None:
        return "FREE"
    return "OCCUPIED" if booking.status == "PARKED" else "RESERVED"


@strawberry.type
class ParkingSpot:
    id: strawberry.ID
    number: int
    state: str | None = strawberry.field(
        default=None, description="FREE, OCCUPIED or RESERVED now (on a lot's spots)."
    )
    _lot_id: strawberry.Private[int]

    @strawberry.field
    async def lot(self, info: Info[Context, None]) -> ParkingLot:
        view = await _lots(info).load(self._lot_id)
        return ParkingLot.of(view)


@strawberry.type
class SpotBooking:
    id: strawberry.ID
    user: User
    vehicle_number: str
    vehicle_model: str | None
    vehicle_colour: str | None
    status: SpotBookingStatus
    reserved_from: datetime | None = strawberry.field(
        description="A reservation's window; null for parking now."
    )
    reserved_until: datetime | None
    parked_at: datetime | None
    left_at: datetime | None
    rate: Decimal = strawberry.field(description="The lot's price per hour when booked.")
    cost: Decimal | None = strawberry.field(
        description="Rate at booking times whole hours, rounded up, at least one; set when "
        "the car leaves."
    )
    _spot: strawberry.Private[tuple[int, int, int]]

    @classmethod
    def of(cls, view: BookingView) -> SpotBooking:
        booking = view.booking
        return cls(
            id=_id(booking.id),
            user=User.of_ref(view.holder),
            vehicle_number=booking.vehicle_number,
            vehicle_model=booking.vehicle_model,
            vehicle_colour=booking.vehicle_colour,
            status=SpotBookingStatus(booking.status),
            reserved_from=booking.reserved_from,
            reserved_until=booking.reserved_until,
            parked_at=booking.parked_at,
            left_at=booking.left_at,
            rate=booking.rate,
            cost=booking.cost,
            _spot=(booking.spot_id, booking.spot_number, booking.lot_id),
        )

    @strawberry.field
    def spot(self) -> ParkingSpot:
        spot_id, number, lot_id = self._spot
        return ParkingSpot(id=_id(spot_id), number=number, _lot_id=lot_id)


@strawberry.type(description="A change of a lot's availability; lot carries the counts after it.")
class LotEvent:
    seq: Long
    kind: str = strawberry.field(
        description="LOT_CREATED, LOT_UPDATED, PARKED, LEFT, FORCE_RELEASED, RESERVED, "
        "CANCELLED, EXPIRED or RELEASE_REQUESTED"
    )
    at: datetime
    actor: User | None
    holder: User | None = strawberry.field(description="Whose booking the event is about.")
    message: str | None
    spot_number: int | None
    booking_id: strawberry.ID | None
    _change: strawberry.Private[Change]
    _lot_id: strawberry.Private[int]

    @classmethod
    def of(cls, change: Change, lot_id: int) -> LotEvent:
        event = change.event
        return cls(
            seq=event.seq,
            kind=event.kind,
            at=event.at,
            actor=User.of_ref(change.actor) if change.actor else None,
            holder=User.of_ref(change.holder) if change.holder else None,
            message=event.message,
            spot_number=event.spot_number,
            booking_id=_id(event.spot_booking_id) if event.spot_booking_id else None,
            _change=change,
            _lot_id=lot_id,
        )

    @strawberry.field(description="The lot, with its counts right after this change.")
    async def lot(self, info: Info[Context, None]) -> ParkingLot:
        event = self._change.event
        view = await _lots(info).load(self._lot_id)
        if view is None:
            raise NotFound(f"the parking lot {self._lot_id} was deleted", field="lotId")
        counts = (event.free, event.occupied, event.reserved, event.spot_count)
        return ParkingLot.of(view, counts)


@strawberry.type(description="One lot's month (UTC).")
class ParkingMonth:
    lot: ParkingLot
    month: str
    stays: int = strawberry.field(description="Stays that overlapped the month.")
    occupied_hours: Decimal
    occupancy: float = strawberry.field(
        description="Occupied spot-hours over the spot-hours of the month, 0 to 1."
    )
    revenue: Decimal = strawberry.field(description="Costs of the stays that ended in it.")

    @classmethod
    def of(cls, line: LotMonth) -> ParkingMonth:
        return cls(
            lot=ParkingLot.of(LotView(line.lot, 0, 0)),
            month=line.month,
            stays=line.stays,
            occupied_hours=line.occupied_hours,
            occupancy=line.occupancy,
            revenue=line.revenue,
        )


@strawberry.input
class CreateParkingLotInput:
    name: str
    address: str | None = None
    postcode: str | None = None
    price_per_hour: Decimal
    spot_count: int
    description: str | None = None
    opens_at: time | None = None
    closes_at: time | None = None
    time_zone: str | None = strawberry.field(default=None, description="IANA; default UTC.")


@strawberry.input(description="Only the fields given change.")
class UpdateParkingLotInput:
    name: str | None = strawberry.UNSET
    address: str | None = strawberry.UNSET
    postcode: str | None = strawberry.UNSET
    price_per_hour: Decimal | None = strawberry.UNSET
    spot_count: int | None = strawberry.UNSET
    active: bool | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    opens_at: time | None = strawberry.UNSET
    closes_at: time | None = strawberry.UNSET
    time_zone: str | None = strawberry.UNSET


def _given(values: Any) -> dict[str, Any]:
    return {name: value for name, value in vars(values).items() if value is not strawberry.UNSET}


def _bookings(page: Page[BookingView]) -> Connection[SpotBooking]:
    return Connection.of(page, SpotBooking.of)


def _optional_id(value: strawberry.ID | None, field: str) -> int | None:
    return None if value is None else decode_id(value, field)


@strawberry.type
class ParkingQuery:
    @strawberry.field
    async def parking_lots(self, info: Info[Context, None]) -> list[ParkingLot]:
        await info.context.require_viewer()
        return [ParkingLot.of(view) for view in await _parking(info).lots()]

    @strawberry.field
    async def parking_lot(self, info: Info[Context, None], id: strawberry.ID) -> ParkingLot | None:
        await info.context.require_viewer()
        view = await _parking(info).lot(decode_id(id))
        return None if view is None else ParkingLot.of(view)

    @strawberry.field(description="Your bookings, newest first.")
    async def my_spot_bookings(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[SpotBooking]:
        actor = await info.context.require_viewer()
        return _bookings(await _parking(info).bookings(actor, first=first, after=after))

    @strawberry.field(
        description="Admins: every booking, newest first; filters by lot, user, status and a "
        "window the booking overlaps."
    )
    async def spot_bookings(
        self,
        info: Info[Context, None],
        lot_id: strawberry.ID | None = None,
        username: str | None = None,
        status: SpotBookingStatus | None = None,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        until: datetime | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[SpotBooking]:
        actor = await info.context.require_viewer()
        page = await _parking(info).bookings(
            actor,
            mine=False,
            first=first,
            after=after,
            lot_id=_optional_id(lot_id, "lotId"),
            username=username,
            status=None if status is None else status.value,
            starts=from_,
            ends=until,
        )
        return _bookings(page)

    @strawberry.field(description="Admins: per lot, occupancy and revenue of a month (YYYY-MM).")
    async def parking_summary(self, info: Info[Context, None], month: str) -> list[ParkingMonth]:
        actor = await info.context.require_viewer()
        return [ParkingMonth.of(line) for line in await _parking(info).summary(actor, month)]

    @strawberry.field(description="A lot's stored events with seq > since, oldest first.")
    async def lot_history(
        self,
        info: Info[Context, None],
        lot_id: strawberry.ID,
        since: Long | None = None,
        first: int | None = None,
    ) -> list[LotEvent]:
        await info.context.require_viewer()
        changes = await _parking(info).history(decode_id(lot_id, "lotId"), since=since, first=first)
        return [_event(change, decode_id(lot_id, "lotId")) for change in changes]


def _event(change: Change, lot_id: int) -> LotEvent:
    return LotEvent.of(change, lot_id)


@strawberry.type
class ParkingMutation:
    @strawberry.mutation(description="Admins: a lot with spots 1..spotCount.")
    async def create_parking_lot(
        self, info: Info[Context, None], input: CreateParkingLotInput
    ) -> ParkingLot:
        actor = await info.context.require_viewer()
        return ParkingLot.of(await _parking(info).create_lot(actor, _given(input)))

    @strawberry.mutation(
        description="Admins: growing adds spots; shrinking takes the highest out of use "
        "(CONFLICT naming those occupied or reserved); active false: CONFLICT while in use."
    )
    async def update_parking_lot(
        self, info: Info[Context, None], id: strawberry.ID, input: UpdateParkingLotInput
    ) -> ParkingLot:
        actor = await info.context.require_viewer()
        return ParkingLot.of(await _parking(info).update_lot(actor, decode_id(id), _given(input)))

    @strawberry.mutation(description="Admins: CONFLICT while the lot is occupied or reserved.")
    async def delete_parking_lot(self, info: Info[Context, None], id: strawberry.ID) -> ParkingLot:
        actor = await info.context.require_viewer()
        return ParkingLot.of(await _parking(info).delete_lot(actor, decode_id(id)))

    @strawberry.mutation(
        description="Park now: the lowest-numbered free spot of the lot (or spotNumber), or "
        'your reservation there when its window is on; CONFLICT "lot full" naming who parks.'
    )
    async def park(
        self,
        info: Info[Context, None],
        lot_id: strawberry.ID,
        vehicle_number: str,
        vehicle_model: str | None = None,
        vehicle_colour: str | None = None,
        spot_number: int | None = None,
    ) -> SpotBooking:
        actor = await info.context.require_viewer()
        view = await _parking(info).park(
            actor,
            decode_id(lot_id, "lotId"),
            vehicle_number,
            model=vehicle_model,
            colour=vehicle_colour,
            spot_number=spot_number,
        )
        return SpotBooking.of(view)

    @strawberry.mutation(
        description="The car leaves; with force an admin ends anyone's parking (they are told)."
    )
    async def leave(
        self, info: Info[Context, None], booking_id: strawberry.ID, force: bool | None = None
    ) -> SpotBooking:
        actor = await info.context.require_viewer()
        view = await _parking(info).leave(
            actor, decode_id(booking_id, "bookingId"), force=bool(force)
        )
        return SpotBooking.of(view)

    @strawberry.mutation(description="A spot for a future window inside one day's opening hours.")
    async def reserve_spot(
        self,
        info: Info[Context, None],
        lot_id: strawberry.ID,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        until: datetime,
        vehicle_number: str,
        vehicle_model: str | None = None,
        vehicle_colour: str | None = None,
    ) -> SpotBooking:
        actor = await info.context.require_viewer()
        view = await _parking(info).reserve(
            actor,
            decode_id(lot_id, "lotId"),
            from_,
            until,
            vehicle_number,
            model=vehicle_model,
            colour=vehicle_colour,
        )
        return SpotBooking.of(view)

    @strawberry.mutation(description="Cancel your reservation before it starts.")
    async def cancel_spot_booking(
        self, info: Info[Context, None], booking_id: strawberry.ID
    ) -> SpotBooking:
        actor = await info.context.require_viewer()
        view = await _parking(info).cancel(actor, decode_id(booking_id, "bookingId"))
        return SpotBooking.of(view)

    @strawberry.mutation(
        description="Asks the holder to free the spot: a RELEASE_REQUESTED event and a mail."
    )
    async def request_spot_release(
        self, info: Info[Context, None], booking_id: strawberry.ID, message: str | None = None
    ) -> LotEvent:
        actor = await info.context.require_viewer()
        parking = _parking(info)
        booking_id = decode_id(booking_id, "bookingId")
        change = await parking.request_release(actor, booking_id, message)
        return _event(change, await parking._lot_of_booking(booking_id))

    @strawberry.mutation(description="A CSV of your parking history; the job's download holds it.")
    async def export_my_spot_bookings(self, info: Info[Context, None]) -> Job:
        actor = await info.context.require_viewer()
        return Job.of(await info.context.services.parking_jobs.start_export(actor))


@strawberry.type
class ParkingSubscription:
    @strawberry.subscription(description="Live availability of one lot, resumable like lockEvents.")
    async def lot_availability(
        self, info: Info[Context, None], lot_id: strawberry.ID, since: Long | None = None
    ) -> AsyncGenerator[LotEvent, None]:
        await info.context.require_viewer()
        lot = decode_id(lot_id, "lotId")
        changes = await _parking(info).follow(
            lot,
            since=since,
            **info.context.live_options(),
        )
        try:
            async for change in changes:
                yield shared_payload(change, lambda change: _event(change, lot))
        finally:
            await changes.aclose()
