"""Parking's checks and rules that need no database: a lot's fields, vehicle numbers, opening
hours, the cost of a stay, what a booking looks like to the API."""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from db.parking import ParkingLot, SpotBooking
from domain import checks
from domain.checks import Invalid, Kind
from domain.errors import BadUserInput
from domain.people import UserRef

MAX_SPOTS = 10_000
MAX_PRICE = Decimal("99999999.99")
MAX_RESERVATION = timedelta(days=7)
MAX_AHEAD = timedelta(days=366)
MAX_MESSAGE_LENGTH = 500
HOUR = timedelta(hours=1)
VEHICLE = re.compile(r"^[A-Z0-9]{2,10}$")


class BookingStatus(enum.StrEnum):
    RESERVED = "RESERVED"
    PARKED = "PARKED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


class LotEventKind(enum.StrEnum):
    LOT_CREATED = "LOT_CREATED"
    LOT_UPDATED = "LOT_UPDATED"
    PARKED = "PARKED"
    LEFT = "LEFT"
    FORCE_RELEASED = "FORCE_RELEASED"
    RESERVED = "RESERVED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    RELEASE_REQUESTED = "RELEASE_REQUESTED"


def money(value: Any) -> Decimal | None:
    """A price: a Decimal (or an int, or a decimal string) ≥ 0 with at most two decimals."""
    if value is None:
        return None
    if isinstance(value, bool | float):
        raise Invalid('must be an exact decimal, such as "2.50"')
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise Invalid("must be a decimal number") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_PRICE:
        raise Invalid(f"must be between 0 and {MAX_PRICE}")
    if amount != amount.quantize(Decimal("0.01")):
        raise Invalid("must have at most two decimals")
    return amount.quantize(Decimal("0.01"))


def _minute_of_day(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, time):
        raise Invalid("must be a time of day")
    if value.second or value.microsecond:
        raise Invalid("must be whole minutes")
    return value.hour * 60 + value.minute


def _time_zone(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise Invalid("must be an IANA time zone such as Europe/Berlin")
    try:
        ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"{value!r} is not a known time zone") from None
    return value.strip()


LOT = Kind(
    name="parking lot",
    model=ParkingLot,
    fields={
        "name": checks.text(200, required=True),
        "address": checks.text(300),
        "postcode": checks.text(20),
        "price_per_hour": money,
        "spot_count": checks.count(low=1, high=MAX_SPOTS),
        "active": lambda value: value,
        "description": checks.text(5000),
        "opens_at": _minute_of_day,
        "closes_at": _minute_of_day,
        "time_zone": _time_zone,
    },
    required=frozenset({"name", "price_per_hour", "spot_count"}),
    unique={},
)


def check_hours(opens_at: int | None, closes_at: int | None) -> None:
    if (opens_at is None) != (closes_at is None):
        raise BadUserInput(
            "opensAt and closesAt go together (neither: always open)", field="closesAt"
        )
    if opens_at is not None and not opens_at < closes_at:
        raise BadUserInput("closesAt must be after opensAt (the same day)", field="closesAt")


def vehicle_number(value: Any) -> str:
    """Stored upper case without spaces or dashes: 2 to 10 letters and digits."""
    if not isinstance(value, str):
        raise BadUserInput("vehicleNumber is required", field="vehicleNumber")
    normal = re.sub(r"[\s-]+", "", value).upper()
    if not VEHICLE.match(normal):
        raise BadUserInput(
            "vehicleNumber must be 2 to 10 letters and digits (spaces and dashes are ignored)",
            field="vehicleNumber",
        )
    return normal


def vehicle_detail(value: Any, field: str, limit: int) -> str | None:
    try:
        return checks.text(limit)(value)
    except Invalid as error:
        raise BadUserInput(f"{field}: {error}", field=field) from None


def message(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > MAX_MESSAGE_LENGTH:
        raise BadUserInput(
            f"message must be at most {MAX_MESSAGE_LENGTH} characters", field="message"
        )
    return value or None


def hours_billed(parked_at: datetime, left_at: datetime) -> int:
    """Whole hours, rounded up, at least one."""
    whole, rest = divmod(max(left_at - parked_at, timedelta(0)), HOUR)
    return max(1, whole + (1 if rest else 0))


def cost(rate: Decimal, parked_at: datetime, left_at: datetime) -> Decimal:
    return (rate * hours_billed(parked_at, left_at)).quantize(Decimal("0.01"))


def is_open(lot: ParkingLot, starts: datetime, ends: datetime | None = None) -> bool:
    """Whether [starts, ends) (or the moment `starts`) lies inside one day's opening hours."""
    if lot.opens_at is None:
        return True
    zone = ZoneInfo(lot.time_zone or "UTC")
    local_start = starts.astimezone(zone)
    day = local_start.replace(hour=0, minute=0, second=0, microsecond=0)
    opens = day + timedelta(minutes=lot.opens_at)
    closes = day + timedelta(minutes=lot.closes_at)
    if not opens <= local_start < closes:
        return False
    return ends is None or ends.astimezone(zone) <= closes


def hours_text(lot: ParkingLot) -> str:
    if lot.opens_at is None:
        return "always open"

    def shown(minutes: int) -> str:
        return f"{minutes // 60:02d}:{minutes % 60:02d}"

    return f"open {shown(lot.opens_at)}-{shown(lot.closes_at)} ({lot.time_zone})"


def describe_lot(lot: ParkingLot) -> dict[str, Any]:
    return {
        "name": lot.name,
        "address": lot.address,
        "postcode": lot.postcode,
        "pricePerHour": str(lot.price_per_hour),
        "spotCount": lot.spot_count,
        "active": lot.active,
        "description": lot.description,
        "opensAt": lot.opens_at,
        "closesAt": lot.closes_at,
        "timeZone": lot.time_zone,
    }


def describe_booking(booking: SpotBooking, holder: str | None) -> dict[str, Any]:
    return {
        "lot": booking.lot_id,
        "spot": booking.spot_number,
        "holder": holder,
        "vehicleNumber": booking.vehicle_number,
        "status": booking.status,
        "reservedFrom": booking.reserved_from,
        "reservedUntil": booking.reserved_until,
        "parkedAt": booking.parked_at,
        "leftAt": booking.left_at,
        "cost": None if booking.cost is None else str(booking.cost),
    }


@dataclass(frozen=True)
class LotView:
    lot: ParkingLot
    occupied: int
    reserved: int

    @property
    def free(self) -> int:
        return max(self.lot.spot_count - self.occupied - self.reserved, 0)


@dataclass(frozen=True)
class BookingView:
    booking: SpotBooking
    holder: UserRef


@dataclass(frozen=True)
class LotMonth:
    """One lot's month: bookings used, hours occupied, occupancy and revenue."""

    lot: ParkingLot
    month: str
    stays: int
    occupied_hours: Decimal
    occupancy: float
    """Occupied spot-hours over available spot-hours (0 to 1)."""
    revenue: Decimal


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of `YYYY-MM`, in UTC."""
    from datetime import UTC

    match = re.fullmatch(r"(\d{4})-(\d{2})", month or "")
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1970:
        raise BadUserInput("month must be YYYY-MM", field="month")
    year, number = int(match.group(1)), int(match.group(2))
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, end


def previous_month(now: datetime) -> str:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last = first - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def occupancy_of(stays: list[SpotBooking], lot: ParkingLot, start, end, now) -> LotMonth:
    occupied = timedelta(0)
    revenue = Decimal("0.00")
    used = 0
    for stay in stays:
        if stay.parked_at is None:
            continue
        left = stay.left_at or now
        overlap = min(left, end) - max(stay.parked_at, start)
        if overlap > timedelta(0):
            occupied += overlap
            used += 1
        if stay.cost is not None and stay.left_at is not None and start <= stay.left_at < end:
            revenue += stay.cost
    available = (end - start) * lot.spot_count
    hours = Decimal(occupied // timedelta(seconds=1)) / Decimal(3600)
    month = f"{start.year:04d}-{start.month:02d}"
    share = occupied / available if available else 0.0
    return LotMonth(
        lot, month, used, hours.quantize(Decimal("0.01")), round(math.fsum([share]), 4), revenue
    )
