"""Exports and imports, one way for every area: background jobs with progress.

An area registers an exporter (it makes a file) or an importer (it reads one and reports an
`ImportResult`) under a job kind, and starts jobs for callers it has already authorised:

- `start_export(actor, kind)` queues the job; its result is a stored file kept for the files'
  retention, which the job's creator (or an admin) fetches through a `Download`.
- `start_import(actor, kind, data, filename)` keeps the upload as a stored file and queues the
  job in one transaction; the job reads it, and deletes it once done.

A job's result is JSON: `{"download": <file id>}` or `{"importResult": {...}}`; `outputs(job)`
reads it back. Where the request that started a job came from (audit.ORIGIN) goes with it, so
the audit entries of what an import writes name the client and request like the API's.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db.identity import User
from db.jobs import Job
from domain.audit import ORIGIN, Origin
from domain.errors import DomainError
from domain.files import Files
from domain.jobs import JobContext, Jobs
from domain.workbooks import ImportProblem

MAX_PROBLEMS = 1000
"""Problems kept in an import's result; past that, one more says how many were left out."""


@dataclass(frozen=True)
class ExportFile:
    filename: str
    content_type: str
    data: bytes


@dataclass
class ImportResult:
    dry_run: bool
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[ImportProblem] = field(default_factory=list)
    """Empty when the import was applied; otherwise nothing was written."""

    def as_json(self) -> dict[str, Any]:
        problems = self.problems[:MAX_PROBLEMS]
        if len(self.problems) > MAX_PROBLEMS:
            last = self.problems[MAX_PROBLEMS]
            left = len(self.problems) - MAX_PROBLEMS
            problems.append(ImportProblem(last.sheet, last.row, None, f"and {left} more problems"))
        return {**asdict(self), "problems": [asdict(problem) for problem in problems]}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ImportResult:
        return cls(
            dry_run=value["dry_run"],
            created=value["created"],
            updated=value["updated"],
            unchanged=value["unchanged"],
            problems=[ImportProblem(**problem) for problem in value["problems"]],
        )


@dataclass(frozen=True)
class JobOutputs:
    file_id: int | None = None
    import_result: ImportResult | None = None


def outputs(job: Job) -> JobOutputs:
    """What a finished export or import job produced."""
    if job.result is None:
        return JobOutputs()
    try:
        result = json.loads(job.result)
    except ValueError:
        return JobOutputs()
    if not isinstance(result, dict):
        return JobOutputs()
    file_id = result.get("download")
    found = result.get("importResult")
    return JobOutputs(
        file_id=file_id if isinstance(file_id, int) else None,
        import_result=ImportResult.from_json(found) if isinstance(found, dict) else None,
    )


def _with_origin(payload: dict[str, Any] | None) -> dict[str, Any]:
    origin = ORIGIN.get()
    given = dict(payload or {})
    if origin is not None:
        given["origin"] = {"client_address": origin.client_address, "request_id": origin.request_id}
    return given


@asynccontextmanager
async def _origin_of(payload: dict[str, Any]) -> AsyncIterator[None]:
    """Run as the request that queued the job."""
    given = payload.get("origin")
    token = ORIGIN.set(Origin(**given) if isinstance(given, dict) else None)
    try:
        yield
    finally:
        ORIGIN.reset(token)


Exporter = Callable[[dict[str, Any], JobContext], Awaitable[ExportFile]]
Importer = Callable[[bytes, dict[str, Any], JobContext], Awaitable[ImportResult]]
Ready = Callable[[AsyncSession, JobContext], Awaitable[None]]


class Transfers:
    def __init__(self, jobs: Jobs, files: Files) -> None:
        self.jobs = jobs
        self.files = files

    def exporter(
        self,
        kind: str,
        export: Exporter,
        *,
        keep_for: timedelta | None = None,
        when_ready: Ready | None = None,
    ) -> None:
        """Run `export(payload, context)` for jobs of `kind`; keep the file it makes (for
        `keep_for`, default the files' retention). `when_ready(session, context)` runs in the
        transaction that keeps it (e.g. to queue a mail)."""

        async def handle(payload: dict[str, Any], context: JobContext) -> dict[str, Any]:
            async with _origin_of(payload):
                made = await export(payload, context)
            async with self.jobs.db.transaction() as session:
                file_id = await self.files.store(
                    session,
                    filename=made.filename,
                    content_type=made.content_type,
                    data=made.data,
                    created_by=context.created_by,
                    keep_for=keep_for,
                )
                if when_ready is not None:
                    await when_ready(session, context)
            return {"download": file_id}

        self.jobs.handle(kind, handle, context=True)

    def importer(self, kind: str, run_import: Importer) -> None:
        """Run `run_import(data, payload, context)` for jobs of `kind` on the uploaded file."""

        async def handle(payload: dict[str, Any], context: JobContext) -> dict[str, Any]:
            data = await self.files.data(payload["file"])
            try:
                async with _origin_of(payload):
                    result = await run_import(data, payload, context)
            except DomainError:
                await self.files.delete(payload["file"])  # refused for good: no retry reads it
                raise
            await self.files.delete(payload["file"])
            return {"importResult": result.as_json()}

        self.jobs.handle(kind, handle, context=True)

    async def start_export(
        self, actor: User, kind: str, payload: dict[str, Any] | None = None
    ) -> Job:
        return await self.jobs.enqueue(
            kind, _with_origin(payload), created_by=actor.id, max_attempts=3
        )

    async def start_import(
        self,
        actor: User,
        kind: str,
        data: bytes,
        filename: str,
        payload: dict[str, Any] | None = None,
        content_type: str = "application/octet-stream",
    ) -> Job:
        async with self.jobs.db.transaction() as session:
            file_id = await self.files.store(
                session,
                filename=filename[:255] or "upload",
                content_type=content_type,
                data=data,
                created_by=actor.id,
            )
            return await self.jobs.enqueue(
                kind,
                {**_with_origin(payload), "file": file_id},
                session=session,
                created_by=actor.id,
                max_attempts=3,
            )
