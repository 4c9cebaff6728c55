"""Background jobs in the GraphQL schema: a job's status, and recent runs for admins."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from db import jobs as models
from graph.context import Context, decode_id


@strawberry.type(description="On-demand work: its status survives restarts of any process.")
class Job:
    id: strawberry.ID
    kind: str
    status: str = strawberry.field(description="queued, running, succeeded or failed")
    attempts: int
    max_attempts: int
    created_at: datetime
    run_after: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None

    @classmethod
    def of(cls, job: models.Job) -> Job:
        return cls(
            id=strawberry.ID(str(job.id)),
            kind=job.kind,
            status=job.status,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            created_at=job.created_at,
            run_after=job.run_after,
            started_at=job.started_at,
            finished_at=job.finished_at,
            error=job.error,
        )


@strawberry.type(description="One execution of a periodic or on-demand job.")
class JobRun:
    id: strawberry.ID
    kind: str
    job_id: strawberry.ID | None
    worker: str
    status: str
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    error: str | None

    @classmethod
    def of(cls, run: models.JobRun) -> JobRun:
        return cls(
            id=strawberry.ID(str(run.id)),
            kind=run.kind,
            job_id=None if run.job_id is None else strawberry.ID(str(run.job_id)),
            worker=run.worker,
            status=run.status,
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration_ms=round((run.finished_at - run.started_at).total_seconds() * 1000, 3),
            error=run.error,
        )


@strawberry.type
class JobQuery:
    @strawberry.field(description="A job you queued (admins: any job).")
    async def job(self, info: Info[Context, None], id: strawberry.ID) -> Job:
        actor = await info.context.require_viewer()
        return Job.of(await info.context.services.jobs.get(actor, decode_id(id)))

    @strawberry.field(description="Admins: the most recent job runs, newest first.")
    async def job_runs(self, info: Info[Context, None], first: int | None = 50) -> list[JobRun]:
        actor = await info.context.require_viewer()
        runs = await info.context.services.jobs.recent_runs(actor, 50 if first is None else first)
        return [JobRun.of(run) for run in runs]
