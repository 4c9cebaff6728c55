"""The job system on the database under test: periodic rounds run once per cluster, queued
jobs run, retry with backoff, fail for good after their attempts, and outlive a dead worker."""

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from db.base import utcnow
from db.engine import Database
from db.jobs import Job, JobRun
from domain.jobs import Jobs


@pytest.fixture
async def db(settings):
    database = Database(settings.database_url)
    yield database
    await database.dispose()


async def rows(db, model):
    async with db.read() as session:
        return list((await session.execute(select(model).order_by(model.id))).scalars())


async def test_a_periodic_round_runs_once_across_processes(settings, db):
    calls = []
    runners = []
    for index in range(3):
        runner = Jobs(Database(settings.database_url), worker=f"w{index}")

        async def tick(index=index):
            calls.append(index)

        runner.every("tick", timedelta(hours=1), tick)
        runners.append(runner)
    for _ in range(3):
        await asyncio.gather(*(runner.run_pending() for runner in runners))
    assert len(calls) == 1
    [run] = await rows(db, JobRun)
    assert (run.kind, run.status, run.job_id) == ("tick", "succeeded", None)
    for runner in runners:
        await runner.db.dispose()


async def test_a_queued_job_runs_and_is_logged(db):
    jobs = Jobs(db)
    seen = []

    async def export(payload):
        seen.append(payload)
        return {"rows": 3}

    jobs.handle("export", export)
    job = await jobs.enqueue("export", {"project": "default"})
    assert await jobs.run_pending() == 1
    assert seen == [{"project": "default"}]
    [stored] = await rows(db, Job)
    assert (stored.status, stored.attempts, json.loads(stored.result)) == (
        "succeeded",
        1,
        {"rows": 3},
    )
    assert stored.finished_at is not None and stored.id == job.id
    [run] = await rows(db, JobRun)
    assert (run.job_id, run.status, run.error) == (job.id, "succeeded", None)


async def test_failures_retry_with_backoff_then_fail_for_good(db):
    jobs = Jobs(db)

    async def flaky(payload):
        raise RuntimeError("smtp said no")

    jobs.handle("mail", flaky)
    await jobs.enqueue("mail", max_attempts=2)
    assert await jobs.run_pending() == 1
    [job] = await rows(db, Job)
    assert (job.status, job.attempts, job.error) == ("queued", 1, "RuntimeError: smtp said no")
    assert job.run_after > utcnow() + timedelta(seconds=1)
    assert await jobs.run_pending() == 0  # not due yet
    async with db.transaction() as session:
        await session.execute(update(Job).values(run_after=utcnow()))
    assert await jobs.run_pending() == 1
    [job] = await rows(db, Job)
    assert (job.status, job.attempts) == ("failed", 2)
    assert [run.status for run in await rows(db, JobRun)] == ["failed", "failed"]


async def test_a_job_outlives_the_worker_that_died_running_it(settings, db):
    started = asyncio.Event()

    async def hang(payload):
        started.set()
        await asyncio.sleep(3600)

    doomed = Jobs(Database(settings.database_url), lease=timedelta(seconds=0.5), worker="doomed")
    doomed.handle("convert", hang)
    await doomed.enqueue("convert", {"file": "a.step"})
    task = asyncio.create_task(doomed.run_pending())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()  # the process dies mid-job: the row stays "running" under its lease
    with pytest.raises(asyncio.CancelledError):
        await task
    await doomed.db.dispose()
    [job] = await rows(db, Job)
    assert (job.status, job.worker) == ("running", "doomed")

    done = []
    survivor = Jobs(db, worker="survivor")

    async def convert(payload):
        done.append(payload["file"])

    survivor.handle("convert", convert)
    await asyncio.sleep(0.6)
    assert await survivor.run_pending() == 1
    [job] = await rows(db, Job)
    assert (job.status, job.worker, job.attempts, done) == ("succeeded", "survivor", 2, ["a.step"])


async def test_a_job_queued_in_a_rolled_back_transaction_does_not_exist(db):
    jobs = Jobs(db)
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await jobs.enqueue("mail", {"to": "x@example.com"}, session=session)
            raise RuntimeError("the change failed")
    assert await rows(db, Job) == []
