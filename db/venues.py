"""Events at venues: venues (unique by name, case-insensitively) and the events booked there.

Two events at one venue never overlap, and the database says so, not the code: each event
blocks its venue over [starts_at, blocks_until) (its end, or its start plus the default length
at write time), and the migration adds the guard (alembic/versions/20261201_0018_venues.py):
- PostgreSQL: the exclusion constraint `ex_venue_events_no_overlap` (btree_gist),
  EXCLUDE USING gist (venue_id WITH =, tstzrange(starts_at, blocks_until) WITH &&);
- SQLite: BEFORE INSERT / UPDATE triggers that RAISE(ABORT, 'venue_events_no_overlap …') on an
  overlap (writers are serialised by BEGIN IMMEDIATE, so the check and the write are atomic).
Both refusals are IntegrityErrors whose message contains `OVERLAP` (see `is_overlap`).
Neither is in the model: Alembic compares neither, and SQLite cannot build the constraint.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    and_,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, counted, utcnow

OVERLAP = "venue_events_no_overlap"
"""The name of the guard against overlapping events, in both databases' refusals."""


class Venue(Base):
    __tablename__ = "venues"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    """Stored as first written; unique case-insensitively (uq_venues_name_lower)."""
    address: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


Index("uq_venues_name_lower", func.lower(Venue.name), unique=True)


class VenueEvent(Base):
    """An event at a venue (the GraphQL `Event`)."""

    __tablename__ = "venue_events"
    __table_args__ = (CheckConstraint("blocks_until > starts_at", name="blocks_after_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    blocks_until: Mapped[datetime]
    """Until when the venue is taken: ends_at, or starts_at + the default length when written."""
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="RESTRICT"), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    organiser_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    organiser_username: Mapped[str] = mapped_column(String(64))
    """As the organiser was named when they created it (for a deleted organiser)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


Index("ix_venue_events_starts_at_id", VenueEvent.starts_at, VenueEvent.id)


def is_overlap(error: IntegrityError) -> bool:
    """Whether the database refused a write because two events at a venue would overlap."""
    return OVERLAP in str(error.orig)


# -- venues ---------------------------------------------------------------------------------------


async def venue_named(session: AsyncSession, name: str) -> Venue | None:
    query = select(Venue).where(func.lower(Venue.name) == name.lower())
    return (await session.execute(query)).scalar_one_or_none()


async def insert_venue_unless_exists(session: AsyncSession, name: str, address: str | None) -> bool:
    """INSERT … ON CONFLICT DO NOTHING (the conflict: the case-insensitive name); whether a row
    was inserted. A concurrent insert of the same name waits for the other transaction and
    then does nothing (PostgreSQL), or never runs beside it (SQLite)."""
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = (
        insert(Venue)
        .values(name=name, address=address, created_at=utcnow())
        .on_conflict_do_nothing()
    )
    return (await session.execute(statement)).rowcount == 1


async def all_venues(session: AsyncSession) -> list[Venue]:
    query = select(Venue).order_by(func.lower(Venue.name), Venue.id)
    return list((await session.execute(query)).scalars())


async def venues_by_id(session: AsyncSession, venue_ids) -> dict[int, Venue]:
    if not venue_ids:
        return {}
    query = select(Venue).where(Venue.id.in_(list(venue_ids)))
    return {venue.id: venue for venue in (await session.execute(query)).scalars()}


# -- events ---------------------------------------------------------------------------------------


async def get_event(
    session: AsyncSession, event_id: int, *, for_update: bool = False
) -> VenueEvent | None:
    query = select(VenueEvent).where(VenueEvent.id == event_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def overlapping(
    session: AsyncSession,
    venue_id: int,
    starts_at: datetime,
    blocks_until: datetime,
    *,
    other_than: int | None = None,
) -> VenueEvent | None:
    """The first event at the venue whose window overlaps [starts_at, blocks_until)."""
    query = select(VenueEvent).where(
        VenueEvent.venue_id == venue_id,
        VenueEvent.starts_at < blocks_until,
        VenueEvent.blocks_until > starts_at,
    )
    if other_than is not None:
        query = query.where(VenueEvent.id != other_than)
    query = query.order_by(VenueEvent.starts_at, VenueEvent.id).limit(1)
    return (await session.execute(query)).scalar_one_or_none()


async def event_page(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime | None,
    venue: str | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> tuple[list[VenueEvent], int]:
    """Events that have not ended by `since` and start before `until`, at the venue named (case
    does not matter), by start then id; the page after `after` (start, id) and the total."""
    query = select(VenueEvent).where(VenueEvent.blocks_until > since)
    if until is not None:
        query = query.where(VenueEvent.starts_at < until)
    if venue is not None:
        query = query.join(Venue, Venue.id == VenueEvent.venue_id).where(
            func.lower(Venue.name) == venue.lower()
        )
    total = await counted(session, query)
    if after is not None:
        start, key = after
        query = query.where(
            or_(
                VenueEvent.starts_at > start,
                and_(VenueEvent.starts_at == start, VenueEvent.id > key),
            )
        )
    query = query.order_by(VenueEvent.starts_at, VenueEvent.id).limit(limit)
    return list((await session.execute(query)).scalars()), total


async def remove_event(session: AsyncSession, event: VenueEvent) -> None:
    await session.execute(delete(VenueEvent).where(VenueEvent.id == event.id))
