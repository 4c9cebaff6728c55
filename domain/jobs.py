"""One durable way to do work in the background, on both databases.

- Periodic jobs run once per cluster per round: each round is claimed by moving the schedule's
  `next_run_at` forward in one conditional UPDATE, which only one process can win.
- On-demand jobs are rows: whoever claims one leases it (`FOR UPDATE SKIP LOCKED` on
  PostgreSQL; SQLite's write lock serialises claims). A worker that dies loses its lease and
  another takes the job over, so queued work survives restarts. Failures retry with
  exponential backoff until `max_attempts`.
- Every execution is logged in `job_runs`, for admins.

Enqueue inside the transaction of the change that causes the work (`enqueue(..., session=)`),
and the job exists exactly when the change committed. A handler registered with
`context=True` also gets a `JobContext`: who queued the job, and `report(progress)`, which
clients see as the job's progress and which renews the lease. A handler that raises a
DomainError fails its job at once with that message (bad input does not get better on retry).

Why not a library: procrastinate and pgqueuer are PostgreSQL-only, arq and saq need Redis;
the embedded default has neither, and these three tables do what we need on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from db import jobs as store
from db.base import utcnow
from db.engine import Database
from db.identity import User
from db.jobs import Job, JobRun
from domain.access import is_admin, require_admin
from domain.errors import BadUserInput, DomainError, Forbidden, NotFound

logger = logging.getLogger("holdfast.jobs")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
MAX_BACKOFF_SECONDS = 300
MAX_ERROR_LENGTH = 2000
PROGRESS_INTERVAL_SECONDS = 0.5
"""A handler's progress reports are written at most this often."""


class JobContext:
    """What a handler registered with `context=True` gets besides the payload."""

    def __init__(self, jobs: Jobs, job: Job) -> None:
        self._jobs = jobs
        self.job_id = job.id
        self.kind = job.kind
        self.created_by = job.created_by
        self.attempt = job.attempts
        self._reported_at: float | None = None

    async def report(self, progress: float) -> None:
        """Tell clients how far the job is (0 to 1); renews the worker's lease. It writes in
        a transaction of its own: not from inside a write transaction of the handler's (on
        SQLite it would wait for that transaction's lock)."""
        now = asyncio.get_running_loop().time()
        if self._reported_at is not None and now - self._reported_at < PROGRESS_INTERVAL_SECONDS:
            return
        self._reported_at = now
        await self._jobs._report(self.job_id, min(max(float(progress), 0.0), 1.0))


@dataclass
class Periodic:
    name: str
    interval: timedelta
    run: Callable[[], Awaitable[Any]]
    due_at: datetime | None = None
    """When the next round is due, as last seen: until then no write transaction is tried."""


class Jobs:
    def __init__(
        self,
        db: Database,
        *,
        lease: timedelta = timedelta(minutes=5),
        poll_interval: float = 1.0,
        worker: str | None = None,
    ) -> None:
        self.db = db
        self.lease = lease
        self.poll_interval = poll_interval
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self._handlers: dict[str, Handler] = {}
        self._with_context: set[str] = set()
        self._periodic: list[Periodic] = []
        self._pollers: list[Callable[[], Awaitable[int]]] = []

    # -- registering and enqueueing ----------------------------------------------------------

    def handle(self, kind: str, handler: Callable[..., Awaitable[Any]], *, context=False) -> None:
        """Run `handler(payload)` for every job of `kind`; `handler(payload, JobContext)` with
        `context=True`. What it returns (JSON) is kept as the job's result."""
        self._handlers[kind] = handler
        if context:
            self._with_context.add(kind)
        else:
            self._with_context.discard(kind)

    def every(self, name: str, interval: timedelta, run: Callable[[], Awaitable[Any]]) -> None:
        """Run `run()` once per `interval` across the whole cluster."""
        self._periodic.append(Periodic(name, interval, run))

    def poll(self, run: Callable[[], Awaitable[int]]) -> None:
        """Run `run()` on every pass of every runner: work that finds itself (cheaply when
        there is none) and keeps itself to one process, e.g. the mailer's cursors."""
        self._pollers.append(run)

    async def enqueue(
        self,
        kind: str,
        payload: dict[str, Any] | None = None,
        *,
        session: AsyncSession | None = None,
        created_by: int | None = None,
        max_attempts: int = 5,
        run_after: datetime | None = None,
    ) -> Job:
        """Queue a job; inside `session` it commits (or not) with the caller's change."""
        job = Job(
            kind=kind,
            payload=json.dumps(payload or {}),
            status="queued",
            attempts=0,
            max_attempts=max_attempts,
            run_after=run_after or utcnow(),
            created_by=created_by,
            created_at=utcnow(),
        )
        if session is not None:
            session.add(job)
            await session.flush()
            return job
        async with self.db.transaction() as own:
            own.add(job)
            await own.flush()
        return job

    # -- reading -----------------------------------------------------------------------------

    async def get(self, actor: User, job_id: int) -> Job:
        async with self.db.read() as session:
            job = await session.get(Job, job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id}")
        if job.created_by != actor.id and not is_admin(actor):
            raise Forbidden("only its creator or an admin may see a job")
        return job

    async def recent_runs(self, actor: User, first: int) -> list[JobRun]:
        require_admin(actor)
        if not 0 <= first <= 500:
            raise BadUserInput("first must be between 0 and 500", field="first")
        async with self.db.read() as session:
            return await store.recent_runs(session, first)

    # -- running -----------------------------------------------------------------------------

    async def _log(self, kind: str, job_id: int | None, started: datetime, error: str | None):
        async with self.db.transaction() as session:
            session.add(
                JobRun(
                    kind=kind,
                    job_id=job_id,
                    worker=self.worker,
                    status="failed" if error else "succeeded",
                    started_at=started,
                    finished_at=utcnow(),
                    error=error,
                )
            )

    async def _report(self, job_id: int, progress: float) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.worker == self.worker, Job.status == "running")
                .values(progress=progress, lease_until=utcnow() + self.lease)
            )

    @staticmethod
    def _describe(error: BaseException) -> str:
        return f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH]

    async def _run_periodic(self, periodic: Periodic) -> bool:
        now = utcnow()
        if periodic.due_at is not None and now < periodic.due_at:
            return False
        async with self.db.transaction() as session:
            claimed = await store.claim_schedule(
                session, periodic.name, now, now + periodic.interval
            )
            periodic.due_at = (
                now + periodic.interval
                if claimed
                else await store.schedule_due_at(session, periodic.name)
            )
        if not claimed:
            return False
        error = None
        try:
            await periodic.run()
        except Exception as failure:
            logger.exception("periodic job %s failed", periodic.name)
            error = self._describe(failure)
        await self._log(periodic.name, None, now, error)
        return True

    async def _run_one_job(self) -> bool:
        if not self._handlers:
            return False
        now = utcnow()
        async with self.db.read() as session:
            if not await store.any_job_due(session, list(self._handlers), now):
                return False
        async with self.db.transaction() as session:
            job = await store.claim_job(session, list(self._handlers), now)
            if job is None:
                return False
            job.status, job.worker = "running", self.worker
            job.attempts += 1
            job.started_at, job.lease_until, job.progress = now, now + self.lease, None
        error, result, final = None, None, False
        handler = self._handlers[job.kind]
        try:
            if job.kind in self._with_context:
                result = await handler(json.loads(job.payload), JobContext(self, job))
            else:
                result = await handler(json.loads(job.payload))
        except DomainError as failure:
            logger.info("job %s (%s) refused: %s", job.id, job.kind, failure.message)
            error, final = failure.message[:MAX_ERROR_LENGTH], True
        except Exception as failure:
            logger.exception("job %s (%s) failed", job.id, job.kind)
            error = self._describe(failure)
        finished = utcnow()
        async with self.db.transaction() as session:
            row = await session.get(Job, job.id)
            if row is not None and row.worker == self.worker and row.status == "running":
                row.lease_until, row.error = None, error
                if error is None:
                    row.status, row.finished_at, row.progress = "succeeded", finished, 1.0
                    row.result = None if result is None else json.dumps(result)
                elif final or row.attempts >= row.max_attempts:
                    row.status, row.finished_at = "failed", finished
                else:
                    backoff = min(2**row.attempts, MAX_BACKOFF_SECONDS)
                    row.status, row.run_after = "queued", finished + timedelta(seconds=backoff)
        await self._log(job.kind, job.id, now, error)
        return True

    async def run_pending(self) -> int:
        """One pass: every due periodic round this process wins, then queued jobs until none
        is due. Returns how many ran."""
        ran = 0
        for periodic in self._periodic:
            ran += await self._run_periodic(periodic)
        for run in self._pollers:
            try:
                ran += bool(await run())
            except Exception:
                logger.exception("job poller %s failed", getattr(run, "__qualname__", run))
        while await self._run_one_job():
            ran += 1
        return ran

    async def run_forever(self) -> None:
        """Run passes until `stop`; a pass in progress is finished, never cut off mid-way (a
        transaction cancelled in the middle can leave SQLite's write lock held)."""
        self._stopping = asyncio.Event()
        while not self._stopping.is_set():
            try:
                await self.run_pending()
            except Exception:
                logger.exception("job runner pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.poll_interval)

    def stop(self) -> None:
        """Let `run_forever` end after the pass it is in."""
        stopping = getattr(self, "_stopping", None)
        if stopping is not None:
            stopping.set()
