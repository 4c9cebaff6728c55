"""Alembic is the only way the schema is made: it goes up, down and up again, and the models
match what the migrations build."""

import asyncio
import os
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from db import migrations
from db.engine import create_engine
from db.models import metadata
from tests.conftest import ROOT

TABLES = {"users", "refresh_tokens", "api_tokens", "server_secrets", "projects"}


async def table_names(url: str) -> set[str]:
    engine = create_engine(url, pooled=False)
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    return names


async def model_differences(url: str) -> list:
    engine = create_engine(url, pooled=False)
    async with engine.connect() as connection:
        differences = await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
        )
    await engine.dispose()
    return differences


@pytest.mark.filterwarnings("ignore:.*expression-based index:UserWarning")
@pytest.mark.filterwarnings("ignore:.*expression-based index:sqlalchemy.exc.SAWarning")
def test_upgrade_downgrade_upgrade(fresh_database):
    url = fresh_database()
    assert asyncio.run(migrations.pending(url)) is True
    asyncio.run(migrations.upgrade(url))
    assert asyncio.run(table_names(url)) >= TABLES
    assert asyncio.run(migrations.pending(url)) is False
    asyncio.run(migrations.downgrade(url, "base"))
    assert asyncio.run(table_names(url)) & TABLES == set()
    asyncio.run(migrations.upgrade(url))
    assert asyncio.run(table_names(url)) >= TABLES
    assert asyncio.run(model_differences(url)) == []


def test_two_processes_migrating_at_once(fresh_database):
    """Each process runs Alembic once; the database's lock keeps two processes apart."""
    url = fresh_database()
    env = {**settings_free_environment(), "HOLDFAST_DATABASE_URL": url}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "server.cli", "migrate"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert asyncio.run(migrations.pending(url)) is False
    assert sum("Running upgrade  -> 0001" in output for output in outputs) == 1


def settings_free_environment() -> dict[str, str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("HOLDFAST_")}
    return {**clean, "HOLDFAST_CONFIG": os.devnull}
