"""Parking: lots, their numbered spots, bookings of a spot (parking now, or reserved ahead) and
the events of every change, one stream per lot (`lot:<id>`).

A booking is the hold (`spot_bookings`): it stays after it ends, as history. While it is
active (RESERVED or PARKED) it blocks its spot for its window, `starts_at` to `ends_at` (NULL:
open-ended, a car parked now until it leaves). The database is the last word on both rules:

- one car per spot: a unique index on `spot_id` of PARKED bookings (both dialects);
- no two active windows of one spot overlap: on PostgreSQL an exclusion constraint
  (btree_gist, `tstzrange(starts_at, ends_at) WITH &&`), on SQLite a trigger that raises
  (migration 0017).

Spots are never deleted: a lot of `spot_count` uses spots 1..spot_count, and shrinking only
takes the highest out of use, so bookings of a spot keep their history.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    and_,
    case,
    cast,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, utcnow
from db.identity import User
from db.streams import HoldTable, Shown, StreamEvent

LOT_SCOPE = "lot"
"""A lot's stream is `lot:<id>`."""

ACTIVE = ("RESERVED", "PARKED")
MONEY = Numeric(10, 2, asdecimal=True)


class ParkingLot(Base):
    __tablename__ = "parking_lots"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(300))
    postcode: Mapped[str | None] = mapped_column(String(20))
    price_per_hour: Mapped[Decimal] = mapped_column(MONEY)
    spot_count: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(Text)
    opens_at: Mapped[int | None] = mapped_column(Integer)
    """Minutes after local midnight; with `closes_at` NULL too, the lot never closes."""
    closes_at: Mapped[int | None] = mapped_column(Integer)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    stream_id: Mapped[int | None] = mapped_column(ForeignKey("streams.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ParkingSpot(Base):
    __tablename__ = "parking_spots"
    __table_args__ = (UniqueConstraint("lot_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("parking_lots.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)


class SpotBooking(Base):
    """A spot held by one person for a window: reserved ahead, or parked now (open-ended)."""

    __tablename__ = "spot_bookings"
    __table_args__ = (
        Index(
            "ix_spot_bookings_one_car_per_spot",
            "spot_id",
            unique=True,
            sqlite_where=text("status = 'PARKED'"),
            postgresql_where=text("status = 'PARKED'"),
        ),
        Index("ix_spot_bookings_lot_status", "lot_id", "status"),
        Index("ix_spot_bookings_user_status", "user_id", "status"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("parking_lots.id", ondelete="CASCADE"))
    spot_id: Mapped[int] = mapped_column(ForeignKey("parking_spots.id", ondelete="CASCADE"))
    spot_number: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    vehicle_number: Mapped[str | None] = mapped_column(String(10))
    vehicle_model: Mapped[str | None] = mapped_column(String(50))
    vehicle_colour: Mapped[str | None] = mapped_column(String(30))
    status: Mapped[str | None] = mapped_column(String(10))
    reserved_from: Mapped[datetime | None]
    reserved_until: Mapped[datetime | None]
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    """NULL: open-ended (parked now, until the car leaves)."""
    parked_at: Mapped[datetime | None] = mapped_column(index=True)
    left_at: Mapped[datetime | None]
    rate: Mapped[Decimal | None] = mapped_column(MONEY)
    """The lot's price per hour when the booking was made."""
    cost: Mapped[Decimal | None] = mapped_column(MONEY)
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    fencing_token: Mapped[int | None] = mapped_column(BigInteger)


class SpotEvent(StreamEvent, Base):
    """One change on a lot's stream: a booking's (as it is after the change) or the lot's own,
    with the lot's counts after it."""

    __tablename__ = "spot_events"

    spot_booking_id: Mapped[int | None]
    spot_number: Mapped[int | None]
    user_id: Mapped[int | None]
    holder_username: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str | None] = mapped_column(String(10))
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    fencing_token: Mapped[int | None] = mapped_column(BigInteger)
    free: Mapped[int] = mapped_column(Integer)
    occupied: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer)
    spot_count: Mapped[int] = mapped_column(Integer)


class ParkingReminder(Base):
    """The day a user was last reminded to park (at most one reminder a day)."""

    __tablename__ = "parking_reminders"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    reminded_on: Mapped[date] = mapped_column(Date)


class ParkingReport(Base):
    """A month whose report went out (one a month, whichever process runs the job)."""

    __tablename__ = "parking_reports"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    sent_at: Mapped[datetime | None]


SPOT_BOOKINGS = HoldTable(
    hold=SpotBooking,
    event=SpotEvent,
    hold_ref="spot_booking_id",
    holder="user_id",
    holder_name="holder_username",
    token="fencing_token",
    given=("free", "occupied", "reserved", "spot_count"),
    shown=Shown(
        "spots",
        what=select(ParkingLot.name + " spot " + cast(SpotBooking.spot_number, String))
        .where(ParkingLot.id == SpotBooking.lot_id)
        .scalar_subquery(),
        since="starts_at",
        until="ends_at",
        current=SpotBooking.status.in_(("RESERVED", "PARKED")),
    ),
)

# -- reads -------------------------------------------------------------------------------------


async def get_lot(session: AsyncSession, lot_id: int, *, for_update: bool = False):
    query = select(ParkingLot).where(ParkingLot.id == lot_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def lots(session: AsyncSession, ids=None) -> list[ParkingLot]:
    query = select(ParkingLot).order_by(ParkingLot.name, ParkingLot.id)
    if ids is not None:
        query = query.where(ParkingLot.id.in_(list(ids)))
    return list((await session.execute(query)).scalars())


async def spots_of(session: AsyncSession, lot_id: int) -> list[ParkingSpot]:
    query = select(ParkingSpot).where(ParkingSpot.lot_id == lot_id).order_by(ParkingSpot.number)
    return list((await session.execute(query)).scalars())


async def spot(session: AsyncSession, lot_id: int, number: int) -> ParkingSpot | None:
    query = select(ParkingSpot).where(ParkingSpot.lot_id == lot_id, ParkingSpot.number == number)
    return (await session.execute(query)).scalar_one_or_none()


def blocking(starts: datetime, ends: datetime | None):
    """Active bookings whose window overlaps [starts, ends) (ends None: open-ended)."""
    overlap = or_(SpotBooking.ends_at.is_(None), SpotBooking.ends_at > starts)
    if ends is not None:
        overlap = and_(overlap, SpotBooking.starts_at < ends)
    return and_(SpotBooking.status.in_(ACTIVE), overlap)


async def bookings_where(session: AsyncSession, *conditions, order=None) -> list[SpotBooking]:
    query = select(SpotBooking).where(*conditions).order_by(*(order or (SpotBooking.id,)))
    return list((await session.execute(query)).scalars())


async def get_booking(session: AsyncSession, booking_id: int) -> SpotBooking | None:
    return await session.get(SpotBooking, booking_id, populate_existing=True)


async def counts(session: AsyncSession, lot_ids, now: datetime) -> dict[int, tuple[int, int]]:
    """Per lot: (occupied spots, spots not occupied but held by a reservation that has not
    ended), over the spots in use."""
    result = {lot_id: (0, 0) for lot_id in lot_ids}
    if not result:
        return result
    in_use = (
        select(ParkingLot.spot_count).where(ParkingLot.id == SpotBooking.lot_id).scalar_subquery()
    )
    query = select(SpotBooking.lot_id, SpotBooking.spot_id, SpotBooking.status).where(
        SpotBooking.lot_id.in_(list(result)),
        SpotBooking.spot_number <= in_use,
        or_(
            SpotBooking.status == "PARKED",
            and_(SpotBooking.status == "RESERVED", SpotBooking.ends_at > now),
        ),
    )
    occupied: dict[int, set[int]] = {}
    reserved: dict[int, set[int]] = {}
    for lot_id, spot_id, status in (await session.execute(query)).all():
        (occupied if status == "PARKED" else reserved).setdefault(lot_id, set()).add(spot_id)
    for lot_id in result:
        taken = occupied.get(lot_id, set())
        result[lot_id] = (len(taken), len(reserved.get(lot_id, set()) - taken))
    return result


def booking_query(
    *,
    lot_id: int | None = None,
    user_id: int | None = None,
    status: str | None = None,
    starts: datetime | None = None,
    ends: datetime | None = None,
    before_id: int | None = None,
):
    query = select(SpotBooking)
    if lot_id is not None:
        query = query.where(SpotBooking.lot_id == lot_id)
    if user_id is not None:
        query = query.where(SpotBooking.user_id == user_id)
    if status is not None:
        query = query.where(SpotBooking.status == status)
    if starts is not None:
        query = query.where(or_(SpotBooking.ends_at.is_(None), SpotBooking.ends_at > starts))
    if ends is not None:
        query = query.where(SpotBooking.starts_at < ends)
    return query


async def users_by_id(session: AsyncSession, ids) -> dict[int, User]:
    if not ids:
        return {}
    query = select(User).where(User.id.in_(list(ids)))
    return {user.id: user for user in (await session.execute(query)).scalars()}


async def last_parked(session: AsyncSession) -> list[tuple[int, datetime | None, bool]]:
    """Per user who ever booked a spot: (user id, when they last parked, parked now)."""
    parked_now = func.max(case((SpotBooking.status == "PARKED", 1), else_=0))
    query = (
        select(SpotBooking.user_id, func.max(SpotBooking.parked_at), parked_now)
        .where(SpotBooking.user_id.is_not(None))
        .group_by(SpotBooking.user_id)
    )
    return [(row[0], row[1], bool(row[2])) for row in (await session.execute(query)).all()]
