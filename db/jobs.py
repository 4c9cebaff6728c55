"""Background jobs: queued work, periodic schedules, and a log of every run."""

from datetime import datetime

from sqlalchemy import Float, Index, String, Text, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, insert_unless_exists, utcnow


class Job(Base):
    """On-demand work. `queued` → `running` (leased to a worker) → `succeeded` | `failed`;
    a failed attempt goes back to `queued` with a later `run_after` until attempts run out."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_claim", "status", "run_after"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=5)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[float | None] = mapped_column(Float)
    """0 to 1 while running, when the handler reports it."""


class JobSchedule(Base):
    """A periodic job: whoever moves `next_run_at` forward runs that round."""

    __tablename__ = "job_schedules"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_run_at: Mapped[datetime]


class JobRun(Base):
    """One execution of a periodic or on-demand job."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_started_at", "started_at"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[int | None]
    worker: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    error: Mapped[str | None] = mapped_column(Text)


async def claim_schedule(
    session: AsyncSession, name: str, now: datetime, next_run_at: datetime
) -> bool:
    """Take this round of a periodic job if it is due; only one process can."""
    await insert_unless_exists(session, JobSchedule, "name", name=name, next_run_at=now)
    result = await session.execute(
        update(JobSchedule)
        .where(JobSchedule.name == name, JobSchedule.next_run_at <= now)
        .values(next_run_at=next_run_at)
    )
    return result.rowcount == 1


async def schedule_due_at(session: AsyncSession, name: str) -> datetime | None:
    query = select(JobSchedule.next_run_at).where(JobSchedule.name == name)
    return (await session.execute(query)).scalar_one_or_none()


def _due(kinds: list[str], now: datetime):
    """Jobs of these kinds that are queued and due, or running on a worker whose lease ran
    out (it crashed)."""
    return Job.kind.in_(kinds) & or_(
        (Job.status == "queued") & (Job.run_after <= now),
        (Job.status == "running") & (Job.lease_until <= now),
    )


async def any_job_due(session: AsyncSession, kinds: list[str], now: datetime) -> bool:
    query = select(Job.id).where(_due(kinds, now)).limit(1)
    return (await session.execute(query)).first() is not None


async def claim_job(session: AsyncSession, kinds: list[str], now: datetime) -> Job | None:
    """The oldest due job; other workers skip rows locked here (PostgreSQL)."""
    query = (
        select(Job)
        .where(_due(kinds, now))
        .order_by(Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def recent_runs(session: AsyncSession, limit: int) -> list[JobRun]:
    query = select(JobRun).order_by(JobRun.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars().all())
