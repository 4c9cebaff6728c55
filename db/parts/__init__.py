"""Fabrication parts: the part, who claims it (a hold on the `parts` stream), the hand workers'
log, and the events of every change.

A part's claim is a hold row (`part_claims`, one per part: the unique part_id is the one
holder). Every change to a part — created, approved, claimed, completed … — is an event on the
stream; the part's stage after the change travels with it (`stage` is given, not the hold's).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from db.assets import matches
from db.base import Base, utcnow
from db.identity import User
from db.streams import HoldTable, Shown, StreamEvent

PART_STREAM = "parts"


class Part(Base):
    __tablename__ = "parts"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    short_id: Mapped[str] = mapped_column(String(16), unique=True)
    """P-0001, from `number`."""
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(8))
    stage: Mapped[str] = mapped_column(String(16), default="REVIEW", index=True)
    status: Mapped[str | None] = mapped_column(String(200))
    subsystem: Mapped[str | None] = mapped_column(String(100), index=True)
    material: Mapped[str | None] = mapped_column(String(100))
    material_thickness: Mapped[str | None] = mapped_column(String(50))
    quantity: Mapped[int] = mapped_column(default=1)
    notes: Mapped[str | None] = mapped_column(Text)
    onshape_url: Mapped[str | None] = mapped_column(String(2000))
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    completed_at: Mapped[datetime | None]
    completed_incorrectly: Mapped[bool] = mapped_column(default=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict:
        return {"version_id_col": cls.__table__.c.version}


class PartClaim(Base):
    """Who is making a part now."""

    __tablename__ = "part_claims"
    __table_args__ = (UniqueConstraint("part_id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("parts.id", ondelete="CASCADE"))
    holder_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    since: Mapped[datetime | None]
    started: Mapped[bool] = mapped_column(default=False)
    """Work began (a hand worker logged): unclaiming says "already started"."""
    fencing_token: Mapped[int | None] = mapped_column(BigInteger)


class PartWorker(Base):
    """The hand-worker log: who worked on a hand part, and when they claimed it."""

    __tablename__ = "part_workers"

    id: Mapped[int] = mapped_column(primary_key=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("parts.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    username: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


class PartEvent(StreamEvent, Base):
    """One change to a part, with the claim as it was and the part's stage after it."""

    __tablename__ = "part_events"

    part_claim_id: Mapped[int | None]
    part_id: Mapped[int] = mapped_column(index=True)
    holder_id: Mapped[int | None]
    holder_username: Mapped[str | None] = mapped_column(String(64))
    since: Mapped[datetime | None]
    fencing_token: Mapped[int | None] = mapped_column(BigInteger)
    short_id: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    stage: Mapped[str] = mapped_column(String(16))


PART_CLAIMS = HoldTable(
    hold=PartClaim,
    event=PartEvent,
    hold_ref="part_claim_id",
    holder="holder_id",
    holder_name="holder_username",
    token="fencing_token",
    given=("short_id", "name", "stage"),
    shown=Shown(
        "parts",
        what=select(Part.short_id + " " + Part.name)
        .where(Part.id == PartClaim.part_id)
        .scalar_subquery(),
        since="since",
        current=select(Part.id)
        .where(Part.id == PartClaim.part_id, Part.stage.in_(("CNC", "HAND", "MISC")))
        .exists(),
    ),
)

SEARCHED = (Part.name, Part.notes, Part.subsystem, Part.material, Part.short_id)


# -- reads ----------------------------------------------------------------------------------------


async def get(session: AsyncSession, part_id: int, *, for_update: bool = False) -> Part | None:
    query = select(Part).where(Part.id == part_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def rows_by_id(session: AsyncSession, part_ids) -> list[Part]:
    if not part_ids:
        return []
    return list((await session.execute(select(Part).where(Part.id.in_(list(part_ids))))).scalars())


async def next_number(session: AsyncSession) -> int:
    """The next part number (called under the parts stream's lock, so no two get one)."""
    return ((await session.execute(select(func.max(Part.number)))).scalar() or 0) + 1


async def claim_of(session: AsyncSession, part_id: int) -> PartClaim | None:
    query = select(PartClaim).where(PartClaim.part_id == part_id)
    return (await session.execute(query)).scalar_one_or_none()


async def claims_of(session: AsyncSession, part_ids) -> dict[int, tuple[PartClaim, User]]:
    if not part_ids:
        return {}
    query = (
        select(PartClaim, User)
        .join(User, User.id == PartClaim.holder_id)
        .where(PartClaim.part_id.in_(list(part_ids)))
    )
    return {claim.part_id: (claim, user) for claim, user in (await session.execute(query)).all()}


async def claims_of_user(session: AsyncSession, user_id: int) -> list[PartClaim]:
    query = select(PartClaim).where(PartClaim.holder_id == user_id).order_by(PartClaim.id)
    return list((await session.execute(query)).scalars())


async def log_worker(session: AsyncSession, part_id: int, user: User, at: datetime) -> None:
    session.add(PartWorker(part_id=part_id, user_id=user.id, username=user.username, at=at))


async def workers_of(session: AsyncSession, part_ids) -> dict[int, list[PartWorker]]:
    found: dict[int, list[PartWorker]] = {part_id: [] for part_id in part_ids}
    if not part_ids:
        return found
    query = (
        select(PartWorker)
        .where(PartWorker.part_id.in_(list(part_ids)))
        .order_by(PartWorker.at, PartWorker.id)
    )
    for worker in (await session.execute(query)).scalars():
        found[worker.part_id].append(worker)
    return found


def part_query(
    *,
    stage: str | None = None,
    kind: str | None = None,
    subsystem: str | None = None,
    claimer_id: int | None = None,
    text: str | None = None,
):
    query = select(Part)
    if stage is not None:
        query = query.where(Part.stage == stage)
    if kind is not None:
        query = query.where(Part.kind == kind)
    if subsystem is not None:
        query = query.where(func.lower(Part.subsystem) == subsystem.lower())
    if claimer_id is not None:
        query = query.where(
            select(PartClaim.id)
            .where(PartClaim.part_id == Part.id, PartClaim.holder_id == claimer_id)
            .exists()
        )
    if text:
        claimer = (
            select(PartClaim.id)
            .join(User, User.id == PartClaim.holder_id)
            .where(PartClaim.part_id == Part.id, matches(text, User.username))
            .exists()
        )
        query = query.where(or_(matches(text, *SEARCHED), claimer))
    return query


async def stage_counts(session: AsyncSession) -> list[tuple[str, str | None, int]]:
    """(stage, subsystem, count) for every pair that has parts."""
    query = select(Part.stage, Part.subsystem, func.count()).group_by(Part.stage, Part.subsystem)
    return [(stage, subsystem, count) for stage, subsystem, count in (await session.execute(query))]


async def completions_since(session: AsyncSession, since: datetime) -> list[datetime]:
    query = select(Part.completed_at).where(Part.completed_at >= since)
    return [row[0] for row in (await session.execute(query)).all()]


async def scoring_rows(session: AsyncSession):
    """What the leaderboard scores: each claimed part's claimer and incorrectly-completed
    flag, and every part's hand workers."""
    parts = (
        await session.execute(
            select(Part.id, PartClaim.holder_id, Part.completed_incorrectly).join(
                PartClaim, PartClaim.part_id == Part.id
            )
        )
    ).all()
    workers = (await session.execute(select(PartWorker.part_id, PartWorker.user_id))).all()
    return parts, workers


async def remove(session: AsyncSession, part: Part) -> None:
    await session.execute(delete(PartClaim).where(PartClaim.part_id == part.id))
    await session.execute(delete(PartWorker).where(PartWorker.part_id == part.id))
    await session.delete(part)
    await session.flush()
