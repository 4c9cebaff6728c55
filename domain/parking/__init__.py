"""Parking lots on the hold engine: each lot is a stream (`lot:<id>`), each booking of a spot a
hold on it.

Every write runs on the engine's general path (domain/holds.py): the acting user key-share
locked, then the lot's stream row, so every read under it is current and each change is one
event with the next seq, carrying the lot's counts after it. The database has the last word
(db/parking.py): one PARKED booking per spot (a unique index), and no two active windows of
one spot overlapping (an exclusion constraint on PostgreSQL, triggers on SQLite).

- park: the lowest-numbered spot free now and not reserved later (a car parked now stays until
  it leaves, so its booking is open-ended), or the spot asked for; the reserving user's own
  reservation when its window is on; idempotent for a car already parked in the lot.
- leave: the holder (or an admin with force, the holder told); cost = rate at booking x whole
  hours rounded up, at least one.
- reserve: the lowest-numbered spot free for a future window inside one day's opening hours;
  cancel before it starts; unused `parking_reservation_grace_minutes` after its start it
  EXPIRES (a periodic job, once per cluster).
- lots: admins create, update (growing adds spots, shrinking takes the highest out of use and is
  CONFLICT naming those occupied or reserved), deactivate and delete (CONFLICT while occupied or
  reserved).
Every change is audited in its own transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import parking as store
from db.base import counted, utcnow
from db.engine import Database, try_cluster_lock
from db.identity import User, get_user_by_username, lock_user
from db.parking import LOT_SCOPE, SPOT_BOOKINGS, ParkingLot, ParkingSpot, SpotBooking, SpotEvent
from db.streams import Stream, create_stream, get_stream, purge_events_before
from domain import audit
from domain.access import is_admin, require_admin
from domain.errors import BadUserInput, Conflict, Forbidden, NotFound, Unauthenticated
from domain.holds import Holds, Writer
from domain.mails import spot_alert
from domain.notify import Notifier
from domain.pagination import Page, decode_cursor, encode_cursor, page_size
from domain.parking.records import (
    LOT,
    MAX_AHEAD,
    MAX_RESERVATION,
    MAX_SPOTS,
    BookingStatus,
    BookingView,
    LotEventKind,
    LotMonth,
    LotView,
    check_hours,
    cost,
    describe_booking,
    describe_lot,
    hours_text,
    is_open,
    message,
    month_bounds,
    occupancy_of,
    vehicle_detail,
    vehicle_number,
)
from domain.people import UserRef, missing_user, user_refs
from domain.streams import Change, EventSource, check_since

__all__ = [
    "SPOT_EVENTS",
    "BookingStatus",
    "BookingView",
    "LotEventKind",
    "LotMonth",
    "LotView",
    "Parking",
]

SPOT_EVENTS = EventSource(scope=LOT_SCOPE, table=SPOT_BOOKINGS)
DEFAULTS = {
    "max_active_parkings_per_user": 1,
    "parking_reservation_grace_minutes": 15,
    "parking_reminder_days": 14,
}
DEFAULT_HISTORY_PAGE = 100
MAX_HISTORY_PAGE = 1000
HOLDERS_NAMED = 5
CURSOR = "spotBooking"


def _range_text(start: datetime, end: datetime) -> str:
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"


class Parking:
    def __init__(self, db: Database, holds: Holds, notifier: Notifier | None = None) -> None:
        self.db = db
        self.holds = holds
        self.notifier = notifier
        self.setting: Callable[[str], Any] = DEFAULTS.__getitem__
        """The runtime settings' value of a name (the server points it at RuntimeSettings)."""
        self.clock: Callable[[], datetime] = utcnow
        self._streams: dict[int, int] = {}
        holds.serve(SPOT_EVENTS)
        if notifier is not None:
            SPOT_EVENTS.mail = self.mail
            notifier.mail_on(SPOT_EVENTS)

    # -- the general path ----------------------------------------------------------------------

    async def _stream_of(self, lot_id: int) -> int:
        stream_id = self._streams.get(lot_id)
        if stream_id is None:
            async with self.db.read() as session:
                lot = await store.get_lot(session, lot_id)
            if lot is None or lot.stream_id is None:
                raise NotFound(f"no parking lot with id {lot_id}", field="lotId")
            stream_id = self._streams[lot_id] = lot.stream_id
        return stream_id

    @asynccontextmanager
    async def _on_lot(self, actor: User | None, lot_id: int) -> AsyncIterator[tuple[Writer, Any]]:
        stream_id = await self._stream_of(lot_id)
        async with self.holds.transaction(SPOT_EVENTS, stream_id, actor=actor) as w:
            lot = await store.get_lot(w.session, lot_id, for_update=True)
            if lot is None:
                raise NotFound(f"no parking lot with id {lot_id}", field="lotId")
            yield w, lot

    async def _lot_of_booking(self, booking_id: int) -> int:
        async with self.db.read() as session:
            booking = await store.get_booking(session, booking_id)
        if booking is None:
            raise NotFound(f"no spot booking with id {booking_id}", field="bookingId")
        return booking.lot_id

    async def _booking(self, session: AsyncSession, booking_id: int) -> tuple[SpotBooking, UserRef]:
        booking = await store.get_booking(session, booking_id)
        if booking is None:
            raise NotFound(f"no spot booking with id {booking_id}", field="bookingId")
        return booking, await self._holder(session, booking.user_id)

    async def _holder(self, session: AsyncSession, user_id: int | None) -> UserRef:
        if user_id is None:
            return missing_user(0)
        return (await user_refs(session, {user_id})).get(user_id) or missing_user(user_id)

    async def _record(
        self,
        w: Writer,
        lot: ParkingLot,
        booking: SpotBooking | None,
        kind: LotEventKind,
        *,
        actor: User | None,
        holder: UserRef | None,
        message: str | None = None,
    ) -> Change:
        await w.session.flush()
        now = self.clock()
        occupied, reserved = (await store.counts(w.session, [lot.id], now))[lot.id]
        given = {
            "free": max(lot.spot_count - occupied - reserved, 0),
            "occupied": occupied,
            "reserved": reserved,
            "spot_count": lot.spot_count,
        }
        return w.record(
            booking if booking is not None else SpotBooking(),
            kind,
            holder=holder if booking is not None else None,
            actor=UserRef.of(actor) if actor is not None else None,
            at=now,
            message=message,
            given=given,
        )

    async def _take(
        self, w: Writer, lot: ParkingLot, booking: SpotBooking, kind: LotEventKind, actor: User
    ) -> None:
        """A new booking, its token the seq of the event that records it; the database's
        constraints have the last word."""
        booking.fencing_token = w.stream.last_seq + 1
        w.session.add(booking)
        try:
            await w.session.flush()
        except IntegrityError:
            raise Conflict(
                f"spot {booking.spot_number} of {lot.name} was just taken: try again",
                lot={"id": lot.id, "name": lot.name},
            ) from None
        await self._record(w, lot, booking, kind, actor=actor, holder=UserRef.of(actor))

    def _audit(self, session, actor, action: str, booking: SpotBooking, holder, before=None):
        audit.record(
            session,
            actor=actor,
            action=action,
            resource_type="spot_booking",
            resource_id=booking.id,
            before=before,
            after=describe_booking(booking, holder.username if holder else None),
        )

    async def _blocked_now(self, session: AsyncSession, lot: ParkingLot, now: datetime):
        """Spot number → the booking keeping it from a car parking now (and staying)."""
        found = await store.bookings_where(
            session,
            SpotBooking.lot_id == lot.id,
            store.blocking(now, None) | (SpotBooking.status == "PARKED"),
            order=(SpotBooking.status.desc(), SpotBooking.id),
        )
        blocked: dict[int, SpotBooking] = {}
        for booking in found:
            blocked.setdefault(booking.spot_number, booking)  # PARKED first
        return blocked

    async def _taken(self, session, lot: ParkingLot, booking: SpotBooking) -> Conflict:
        holder = await self._holder(session, booking.user_id)
        if booking.status == BookingStatus.PARKED:
            what = f"spot {booking.spot_number} of {lot.name} is taken by {holder.username}"
        else:
            what = (
                f"spot {booking.spot_number} of {lot.name} is reserved by {holder.username} "
                f"from {booking.starts_at:%Y-%m-%d %H:%M} UTC"
            )
        return Conflict(
            what,
            holder={"username": holder.username, "since": booking.starts_at.isoformat()},
            spot=booking.spot_number,
        )

    # -- parking now, leaving ------------------------------------------------------------------

    async def park(
        self,
        actor: User,
        lot_id: int,
        vehicle: str,
        *,
        model: str | None = None,
        colour: str | None = None,
        spot_number: int | None = None,
    ) -> BookingView:
        vehicle = vehicle_number(vehicle)
        model = vehicle_detail(model, "vehicleModel", 50)
        colour = vehicle_detail(colour, "vehicleColour", 30)
        if spot_number is not None and not 1 <= spot_number <= MAX_SPOTS:
            raise BadUserInput(f"spotNumber must be from 1 to {MAX_SPOTS}", field="spotNumber")
        me = UserRef.of(actor)
        async with self._on_lot(actor, lot_id) as (w, lot):
            session, now = w.session, self.clock()
            mine = await store.bookings_where(
                session, SpotBooking.user_id == actor.id, SpotBooking.status == "PARKED"
            )
            for booking in mine:
                if booking.lot_id == lot.id and spot_number in (None, booking.spot_number):
                    return BookingView(booking, me)  # parked already: as it is
            if not lot.active:
                raise Conflict(f"{lot.name} is closed (inactive)", field="lotId")
            if not is_open(lot, now):
                raise Conflict(f"{lot.name} is closed now: {hours_text(lot)}", field="lotId")
            limit = self.setting("max_active_parkings_per_user")
            if len(mine) >= limit:
                raise Conflict(
                    f"you already park {len(mine)} car(s) and may park at most {limit}: "
                    "leave first",
                    field="lotId",
                    bookings=[booking.id for booking in mine],
                )
            reservation = next(
                (
                    booking
                    for booking in await store.bookings_where(
                        session,
                        SpotBooking.lot_id == lot.id,
                        SpotBooking.user_id == actor.id,
                        SpotBooking.status == "RESERVED",
                        SpotBooking.starts_at <= now,
                        SpotBooking.ends_at > now,
                    )
                    if spot_number in (None, booking.spot_number)
                ),
                None,
            )
            if reservation is not None:
                before = describe_booking(reservation, me.username)
                reservation.status = BookingStatus.PARKED
                reservation.parked_at = now
                reservation.vehicle_number = vehicle
                reservation.vehicle_model = model or reservation.vehicle_model
                reservation.vehicle_colour = colour or reservation.vehicle_colour
                try:
                    await session.flush()
                except IntegrityError:
                    raise Conflict(
                        f"spot {reservation.spot_number} still has a car in it", field="lotId"
                    ) from None
                await self._record(w, lot, reservation, LotEventKind.PARKED, actor=actor, holder=me)
                self._audit(session, actor, "park", reservation, me, before)
                return BookingView(reservation, me)
            blocked = await self._blocked_now(session, lot, now)
            if spot_number is not None:
                if spot_number > lot.spot_count:
                    raise NotFound(f"{lot.name} has no spot {spot_number}", field="spotNumber")
                if spot_number in blocked:
                    raise await self._taken(session, lot, blocked[spot_number])
                number = spot_number
            else:
                number = next((n for n in range(1, lot.spot_count + 1) if n not in blocked), None)
                if number is None:
                    raise await self._full(session, lot, blocked)
            spot = await store.spot(session, lot.id, number)
            booking = SpotBooking(
                lot_id=lot.id,
                spot_id=spot.id,
                spot_number=number,
                user_id=actor.id,
                vehicle_number=vehicle,
                vehicle_model=model,
                vehicle_colour=colour,
                status=BookingStatus.PARKED.value,
                starts_at=now,
                ends_at=None,
                parked_at=now,
                rate=lot.price_per_hour,
                created_at=now,
            )
            await self._take(w, lot, booking, LotEventKind.PARKED, actor)
            self._audit(session, actor, "park", booking, me)
        return BookingView(booking, me)

    async def _full(self, session, lot: ParkingLot, blocked: dict[int, SpotBooking]) -> Conflict:
        parked = [b for b in blocked.values() if b.status == BookingStatus.PARKED]
        people = await user_refs(session, {b.user_id for b in parked if b.user_id})
        holders = [
            {"spot": b.spot_number, "username": people[b.user_id].username}
            for b in sorted(parked, key=lambda b: b.spot_number)
            if b.user_id in people
        ][:HOLDERS_NAMED]
        names = ", ".join(f"{h['username']} (spot {h['spot']})" for h in holders)
        return Conflict(
            f"lot full: {lot.name} has no free spot" + (f"; parked: {names}" if names else ""),
            lot={"id": lot.id, "name": lot.name},
            holders=holders,
        )

    async def leave(self, actor: User, booking_id: int, *, force: bool = False) -> BookingView:
        """The car leaves: the holder, or (force) an admin for anyone, who is told."""
        lot_id = await self._lot_of_booking(booking_id)
        async with self._on_lot(actor, lot_id) as (w, lot):
            booking, holder = await self._booking(w.session, booking_id)
            mine = booking.user_id == actor.id
            if not mine and not force:
                raise Forbidden(
                    f"spot {booking.spot_number} of {lot.name} is held by {holder.username}: only "
                    "they or an admin (with force) can end it"
                )
            if not mine and not is_admin(actor):
                raise Forbidden("only an admin may end someone else's parking")
            if booking.status != BookingStatus.PARKED:
                hint = ": cancel a reservation instead" if booking.status == "RESERVED" else ""
                raise BadUserInput(
                    f"booking {booking.id} is {booking.status}, not parked{hint}",
                    field="bookingId",
                )
            before = describe_booking(booking, holder.username)
            self._end(booking, self.clock())
            kind = LotEventKind.LEFT if mine else LotEventKind.FORCE_RELEASED
            await self._record(w, lot, booking, kind, actor=actor, holder=holder)
            self._audit(
                w.session, actor, "leave" if mine else "force_leave", booking, holder, before
            )
        return BookingView(booking, holder)

    @staticmethod
    def _end(booking: SpotBooking, now: datetime) -> None:
        booking.left_at = now
        booking.ends_at = max(now, booking.starts_at)
        booking.status = BookingStatus.COMPLETED.value
        booking.cost = cost(booking.rate, booking.parked_at, now)

    # -- reserving ahead -------------------------------------------------------------------------

    async def reserve(
        self,
        actor: User,
        lot_id: int,
        starts: datetime,
        ends: datetime,
        vehicle: str,
        *,
        model: str | None = None,
        colour: str | None = None,
    ) -> BookingView:
        vehicle = vehicle_number(vehicle)
        model = vehicle_detail(model, "vehicleModel", 50)
        colour = vehicle_detail(colour, "vehicleColour", 30)
        now = self.clock()
        for name, value in (("from", starts), ("until", ends)):
            if value.tzinfo is None:
                raise BadUserInput(f"{name} needs a time zone", field=name)
        if starts <= now:
            raise BadUserInput("from must be in the future", field="from")
        if ends <= starts:
            raise BadUserInput("until must be after from", field="until")
        if ends - starts > MAX_RESERVATION:
            raise BadUserInput("a reservation lasts at most 7 days", field="until")
        if starts > now + MAX_AHEAD:
            raise BadUserInput("from must be within a year", field="from")
        me = UserRef.of(actor)
        async with self._on_lot(actor, lot_id) as (w, lot):
            session = w.session
            if not lot.active:
                raise Conflict(f"{lot.name} is closed (inactive)", field="lotId")
            if not is_open(lot, starts, ends):
                raise BadUserInput(
                    f"{lot.name} is {hours_text(lot)}: the window must lie within one day's "
                    "opening hours",
                    field="from",
                )
            blockers = await store.bookings_where(
                session, SpotBooking.lot_id == lot.id, store.blocking(starts, ends)
            )
            taken = {booking.spot_number for booking in blockers}
            number = next((n for n in range(1, lot.spot_count + 1) if n not in taken), None)
            if number is None:
                raise Conflict(
                    f"no spot of {lot.name} is free from {_range_text(starts, ends)}",
                    lot={"id": lot.id, "name": lot.name},
                )
            spot = await store.spot(session, lot.id, number)
            booking = SpotBooking(
                lot_id=lot.id,
                spot_id=spot.id,
                spot_number=number,
                user_id=actor.id,
                vehicle_number=vehicle,
                vehicle_model=model,
                vehicle_colour=colour,
                status=BookingStatus.RESERVED.value,
                reserved_from=starts,
                reserved_until=ends,
                starts_at=starts,
                ends_at=ends,
                rate=lot.price_per_hour,
                created_at=now,
            )
            await self._take(w, lot, booking, LotEventKind.RESERVED, actor)
            self._audit(session, actor, "reserve", booking, me)
        return BookingView(booking, me)

    async def cancel(self, actor: User, booking_id: int) -> BookingView:
        """The holder (or an admin) cancels a reservation before it starts."""
        lot_id = await self._lot_of_booking(booking_id)
        async with self._on_lot(actor, lot_id) as (w, lot):
            booking, holder = await self._booking(w.session, booking_id)
            if booking.user_id != actor.id and not is_admin(actor):
                raise Forbidden(f"booking {booking.id} is {holder.username}'s: only they cancel it")
            if booking.status != BookingStatus.RESERVED:
                raise BadUserInput(
                    f"booking {booking.id} is {booking.status}: only a reservation can be "
                    "cancelled",
                    field="bookingId",
                )
            if booking.starts_at <= self.clock():
                raise BadUserInput(
                    f"the reservation started at {booking.starts_at:%Y-%m-%d %H:%M} UTC: park, "
                    "or let it expire",
                    field="bookingId",
                )
            before = describe_booking(booking, holder.username)
            booking.status = BookingStatus.CANCELLED.value
            await self._record(w, lot, booking, LotEventKind.CANCELLED, actor=actor, holder=holder)
            self._audit(w.session, actor, "cancel", booking, holder, before)
        return BookingView(booking, holder)

    async def request_release(
        self, actor: User, booking_id: int, text: str | None = None
    ) -> Change:
        """Ask the holder of a spot to give it up: a RELEASE_REQUESTED event (and a mail)."""
        text = message(text)
        lot_id = await self._lot_of_booking(booking_id)
        async with self._on_lot(actor, lot_id) as (w, lot):
            booking, holder = await self._booking(w.session, booking_id)
            if booking.status not in ("PARKED", "RESERVED"):
                raise BadUserInput(f"booking {booking.id} is {booking.status}", field="bookingId")
            if booking.user_id == actor.id:
                raise BadUserInput("you hold this spot yourself", field="bookingId")
            return await self._record(
                w,
                lot,
                booking,
                LotEventKind.RELEASE_REQUESTED,
                actor=actor,
                holder=holder,
                message=text,
            )

    # -- the user leaves; reservations expire -------------------------------------------------

    async def release_all_of_user(
        self, session: AsyncSession, user: User, actor: User, reason: str
    ) -> Callable[[], Awaitable[None]]:
        """Identity's hook: a deactivated or deleted user parks nothing and reserves nothing."""
        active = await store.bookings_where(
            session,
            SpotBooking.user_id == user.id,
            SpotBooking.status.in_(store.ACTIVE),
            order=(SpotBooking.lot_id, SpotBooking.id),
        )
        writers = []
        holder = UserRef.of(user)
        for lot_id in sorted({booking.lot_id for booking in active}):
            lot = await store.get_lot(session, lot_id)
            writer = await self.holds.within(session, SPOT_EVENTS, lot.stream_id)
            writers.append(writer)
            for booking in await store.bookings_where(
                session,
                SpotBooking.lot_id == lot_id,
                SpotBooking.user_id == user.id,
                SpotBooking.status.in_(store.ACTIVE),
            ):
                before = describe_booking(booking, holder.username)
                if booking.status == BookingStatus.PARKED:
                    self._end(booking, self.clock())
                else:
                    booking.status = BookingStatus.CANCELLED.value
                await self._record(
                    writer,
                    lot,
                    booking,
                    LotEventKind.FORCE_RELEASED,
                    actor=actor,
                    holder=holder,
                    message=reason,
                )
                self._audit(session, actor, "force_leave", booking, holder, before)

        async def publish() -> None:
            await self.holds.publish(*writers)

        return publish

    async def expire_due(self, retention: timedelta | None = None) -> int:
        """Reservations not used within the grace period after their start expire, freeing
        their spot; events older than `retention` go. Runs on the job system, once per
        cluster."""
        now = self.clock()
        grace = timedelta(minutes=self.setting("parking_reservation_grace_minutes"))
        async with self.db.transaction() as session:
            if retention is not None and await try_cluster_lock(session, "parking-retention"):
                await purge_events_before(session, SpotEvent, now - retention)
            due = await store.bookings_where(
                session, SpotBooking.status == "RESERVED", SpotBooking.starts_at < now - grace
            )
        expired = 0
        for lot_id in sorted({booking.lot_id for booking in due}):
            async with self._on_lot(None, lot_id) as (w, lot):
                for booking in await store.bookings_where(
                    w.session,
                    SpotBooking.lot_id == lot_id,
                    SpotBooking.status == "RESERVED",
                    SpotBooking.starts_at < now - grace,
                ):
                    holder = await self._holder(w.session, booking.user_id)
                    before = describe_booking(booking, holder.username)
                    booking.status = BookingStatus.EXPIRED.value
                    await self._record(
                        w,
                        lot,
                        booking,
                        LotEventKind.EXPIRED,
                        actor=None,
                        holder=holder,
                        message=f"not used within {grace.seconds // 60} minutes of its start",
                    )
                    self._audit(w.session, None, "expire", booking, holder, before)
                    expired += 1
        return expired

    async def mail(self, session: AsyncSession, stream_id: int, changes: list[Change]) -> None:
        """The mailer's rule: the holder hears when someone else (or time) acts on their spot."""
        if self.notifier is not None:
            await self.notifier.tell_holders(session, changes, spot_alert, "spot")

    # -- lots ------------------------------------------------------------------------------------

    async def create_lot(self, actor: User, values: dict[str, Any]) -> LotView:
        require_admin(actor)
        checked = LOT.checked(values, creating=True)
        check_hours(checked.get("opens_at"), checked.get("closes_at"))
        checked["time_zone"] = checked.get("time_zone") or "UTC"
        if checked.get("active") is None:
            checked["active"] = True
        async with self.db.transaction() as session:
            current = await lock_user(session, actor.id, exclusive=False)
            if current is None or not current.active:
                raise Unauthenticated("your account is no longer active")
            lot = ParkingLot(**checked)
            session.add(lot)
            await session.flush()
            stream = await create_stream(session, f"{LOT_SCOPE}:{lot.id}")
            lot.stream_id = stream.id
            session.add_all(
                ParkingSpot(lot_id=lot.id, number=number) for number in range(1, lot.spot_count + 1)
            )
            writer = await self.holds.within(session, SPOT_EVENTS, stream.id)
            await self._record(
                writer, lot, None, LotEventKind.LOT_CREATED, actor=actor, holder=None
            )
            audit.record(
                session,
                actor=actor,
                action="create",
                resource_type="parking_lot",
                resource_id=lot.id,
                after=describe_lot(lot),
            )
        await self.holds.publish(writer)
        return LotView(lot, 0, 0)

    async def update_lot(self, actor: User, lot_id: int, values: dict[str, Any]) -> LotView:
        require_admin(actor)
        checked = LOT.checked(values, creating=False)
        if "active" in checked and checked["active"] is None:
            raise BadUserInput("active must be true or false", field="active")
        async with self._on_lot(actor, lot_id) as (w, lot):
            session, now = w.session, self.clock()
            before = describe_lot(lot)
            opens = checked.get("opens_at", lot.opens_at)
            closes = checked.get("closes_at", lot.closes_at)
            check_hours(opens, closes)
            busy = await store.bookings_where(
                session,
                SpotBooking.lot_id == lot.id,
                store.blocking(now, None) | (SpotBooking.status == "PARKED"),
                order=(SpotBooking.spot_number,),
            )
            count = checked.get("spot_count") or lot.spot_count
            if count < lot.spot_count:
                held = sorted({b.spot_number for b in busy if b.spot_number > count})
                if held:
                    raise Conflict(
                        f"{lot.name} cannot shrink to {count} spots: spot(s) "
                        f"{', '.join(map(str, held))} are occupied or reserved",
                        field="spotCount",
                        spots=held,
                    )
            elif count > lot.spot_count:
                existing = {spot.number for spot in await store.spots_of(session, lot.id)}
                session.add_all(
                    ParkingSpot(lot_id=lot.id, number=number)
                    for number in range(1, count + 1)
                    if number not in existing
                )
            if checked.get("active") is False and lot.active and busy:
                spots = sorted({b.spot_number for b in busy})
                raise Conflict(
                    f"{lot.name} is in use (spots {', '.join(map(str, spots))} occupied or "
                    "reserved): it cannot be deactivated",
                    field="active",
                    spots=spots,
                )
            for name, value in checked.items():
                if name in ("name", "price_per_hour", "spot_count", "time_zone") and value is None:
                    continue
                setattr(lot, name, value)
            after = describe_lot(lot)
            if after != before:
                await self._record(w, lot, None, LotEventKind.LOT_UPDATED, actor=actor, holder=None)
                audit.record(
                    session,
                    actor=actor,
                    action="update",
                    resource_type="parking_lot",
                    resource_id=lot.id,
                    before=before,
                    after=after,
                )
            occupied, reserved = (await store.counts(session, [lot.id], now))[lot.id]
        return LotView(lot, occupied, reserved)

    async def delete_lot(self, actor: User, lot_id: int) -> LotView:
        require_admin(actor)
        async with self._on_lot(actor, lot_id) as (w, lot):
            session, now = w.session, self.clock()
            busy = await store.bookings_where(
                session,
                SpotBooking.lot_id == lot.id,
                store.blocking(now, None) | (SpotBooking.status == "PARKED"),
                order=(SpotBooking.spot_number,),
            )
            if busy:
                spots = sorted({b.spot_number for b in busy})
                raise Conflict(
                    f"{lot.name} is in use (spots {', '.join(map(str, spots))} occupied or "
                    "reserved): it cannot be deleted",
                    field="id",
                    spots=spots,
                )
            audit.record(
                session,
                actor=actor,
                action="delete",
                resource_type="parking_lot",
                resource_id=lot.id,
                before=describe_lot(lot),
            )
            stream_id = lot.stream_id
            await session.execute(delete(SpotBooking).where(SpotBooking.lot_id == lot.id))
            await session.execute(delete(ParkingSpot).where(ParkingSpot.lot_id == lot.id))
            await session.delete(lot)
            await session.flush()
            await session.execute(delete(SpotEvent).where(SpotEvent.stream_id == stream_id))
            await session.execute(delete(Stream).where(Stream.id == stream_id))
            w.changes.clear()
        self._streams.pop(lot_id, None)
        return LotView(lot, 0, 0)

    # -- reading -------------------------------------------------------------------------------

    async def lots(self, ids=None) -> list[LotView]:
        async with self.db.read() as session:
            found = await store.lots(session, ids)
            counted = await store.counts(session, [lot.id for lot in found], self.clock())
        return [LotView(lot, *counted[lot.id]) for lot in found]

    async def lot(self, lot_id: int) -> LotView | None:
        found = await self.lots([lot_id])
        return found[0] if found else None

    async def spots(self, lot_id: int) -> list[tuple[ParkingSpot, SpotBooking | None]]:
        """The lot's spots in use, each with the booking holding it now (if any)."""
        async with self.db.read() as session:
            lot = await store.get_lot(session, lot_id)
            if lot is None:
                return []
            spots = [s for s in await store.spots_of(session, lot_id) if s.number <= lot.spot_count]
            blocked = await self._blocked_now(session, lot, self.clock())
        return [(spot, blocked.get(spot.number)) for spot in spots]

    async def bookings(
        self,
        actor: User,
        *,
        mine: bool = True,
        first: int | None = None,
        after: str | None = None,
        lot_id: int | None = None,
        username: str | None = None,
        status: str | None = None,
        starts: datetime | None = None,
        ends: datetime | None = None,
    ) -> Page[BookingView]:
        """Bookings, newest first: the actor's own, or (admins) everyone's with filters."""
        limit = page_size(first)
        key = decode_cursor(CURSOR, after)
        if not mine:
            require_admin(actor)
        async with self.db.read() as session:
            user_id = actor.id if mine else None
            if username is not None and not mine:
                user = await get_user_by_username(session, username)
                if user is None:
                    return Page([], [], 0, False)
                user_id = user.id
            query = store.booking_query(
                lot_id=lot_id, user_id=user_id, status=status, starts=starts, ends=ends
            )
            total = await counted(session, query)
            if key is not None:
                query = query.where(SpotBooking.id < key)
            rows = list(
                (
                    await session.execute(query.order_by(SpotBooking.id.desc()).limit(limit + 1))
                ).scalars()
            )
            people = await user_refs(session, {row.user_id for row in rows if row.user_id})
        items = [
            BookingView(row, people.get(row.user_id) or missing_user(row.user_id or 0))
            for row in rows[:limit]
        ]
        return Page(
            items,
            [encode_cursor(CURSOR, view.booking.id) for view in items],
            total,
            len(rows) > limit,
        )

    async def all_bookings_of(self, user_id: int) -> list[SpotBooking]:
        async with self.db.read() as session:
            return await store.bookings_where(
                session, SpotBooking.user_id == user_id, order=(SpotBooking.id,)
            )

    async def summary(self, actor: User | None, month: str) -> list[LotMonth]:
        """Per lot, for the month `YYYY-MM` (UTC): stays, occupied hours, occupancy, revenue.
        Admins (None: the system, for the monthly report)."""
        if actor is not None:
            require_admin(actor)
        start, end = month_bounds(month)
        now = self.clock()
        async with self.db.read() as session:
            found = await store.lots(session)
            stays = await store.bookings_where(
                session,
                SpotBooking.parked_at.is_not(None),
                SpotBooking.parked_at < end,
                (SpotBooking.left_at.is_(None)) | (SpotBooking.left_at >= start),
            )
        by_lot: dict[int, list[SpotBooking]] = {}
        for stay in stays:
            by_lot.setdefault(stay.lot_id, []).append(stay)
        return [occupancy_of(by_lot.get(lot.id, []), lot, start, end, now) for lot in found]

    async def history(
        self, lot_id: int, *, since: int | None = None, first: int | None = None
    ) -> list[Change]:
        if first is not None and not 0 <= first <= MAX_HISTORY_PAGE:
            raise BadUserInput(f"first must be between 0 and {MAX_HISTORY_PAGE}", field="first")
        stream_id = await self._stream_of(lot_id)
        async with self.db.read() as session:
            stream = await get_stream(session, stream_id)
            check_since(since, stream.purged_through_seq, "lot")
            return await SPOT_EVENTS.stored(
                session,
                stream_id,
                since or 0,
                limit=DEFAULT_HISTORY_PAGE if first is None else first,
            )

    async def follow(self, lot_id: int, *, since: int | None = None, **options):
        stream_id = await self._stream_of(lot_id)
        return self.holds.feeds.follow(SPOT_EVENTS, stream_id, since, what="lot", **options)
