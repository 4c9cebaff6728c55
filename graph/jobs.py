"""Background jobs in the GraphQL schema: a job's status, progress and what it produced (a
download, an import's result), and recent runs for admins."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from db import jobs as models
from domain import files, transfers, workbooks
from graph.context import Context, decode_id


@strawberry.type(
    description="A file to fetch with a plain GET: the URL alone is the credential, until"
    " expiresAt."
)
class Download:
    url: str
    filename: str
    expires_at: datetime

    @classmethod
    def of(cls, download: files.Download) -> Download:
        return cls(url=download.url, filename=download.filename, expires_at=download.expires_at)


@strawberry.type
class ImportProblem:
    sheet: str
    row: int = strawberry.field(description="1-based row of the sheet, the header being row 1.")
    column: str | None
    message: str

    @classmethod
    def of(cls, problem: workbooks.ImportProblem) -> ImportProblem:
        return cls(
            sheet=problem.sheet, row=problem.row, column=problem.column, message=problem.message
        )


@strawberry.type
class ImportResult:
    dry_run: bool
    created: int
    updated: int
    unchanged: int
    problems: list[ImportProblem] = strawberry.field(
        description="Empty when the import was applied; otherwise nothing was written."
    )

    @classmethod
    def of(cls, result: transfers.ImportResult) -> ImportResult:
        return cls(
            dry_run=result.dry_run,
            created=result.created,
            updated=result.updated,
            unchanged=result.unchanged,
            problems=[ImportProblem.of(problem) for problem in result.problems],
        )


@strawberry.type(
    description="Background work a client started: poll job(id) until status is succeeded or"
    " failed. Its status survives restarts of any process."
)
class Job:
    id: strawberry.ID
    kind: str
    status: str = strawberry.field(description="queued, running, succeeded or failed")
    progress: float | None = strawberry.field(
        description="0 to 1 while running, when the job can tell."
    )
    import_result: ImportResult | None = strawberry.field(
        description="What an import found or did, once it finished."
    )
    file_id: strawberry.Private[int | None]
    attempts: int
    max_attempts: int
    created_at: datetime
    run_after: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None

    @strawberry.field(description="What an export produced, once it succeeded.")
    async def download(self, info: Info[Context, None]) -> Download | None:
        if self.file_id is None:
            return None
        download = await info.context.services.files.link(self.file_id)
        return None if download is None else Download.of(download)

    @classmethod
    def of(cls, job: models.Job) -> Job:
        produced = transfers.outputs(job) if job.status == "succeeded" else transfers.JobOutputs()
        return cls(
            id=strawberry.ID(str(job.id)),
            kind=job.kind,
            status=job.status,
            progress=job.progress,
            import_result=(
                None if produced.import_result is None else ImportResult.of(produced.import_result)
            ),
            file_id=produced.file_id,
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
