"""Alembic is the only way the schema is made: it goes up, down and up again, and the models
match what the migrations build."""

import asyncio
import json
import os
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

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


async def _rows(url: str, sql: str) -> list[tuple]:
    engine = create_engine(url, pooled=False)
    async with engine.connect() as connection:
        rows = (await connection.execute(text(sql))).all()
    await engine.dispose()
    return [tuple(row) for row in rows]


async def _run(url: str, *statements: str) -> None:
    engine = create_engine(url, pooled=False)
    async with engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))
    await engine.dispose()


def test_streams_take_over_the_projects_counters_with_their_history(fresh_database):
    """0010 on a database in use: seqs, the purge mark and the events carry over, the mailer
    starts where the events are (no mail about the past), and new tokens are above old ones."""
    url = fresh_database()
    asyncio.run(migrations.upgrade(url, "0009"))
    at = "'2026-11-30 10:00:00+00:00'"
    asyncio.run(
        _run(
            url,
            "INSERT INTO users (id, username, email, password_hash, role, active,"
            " token_version, created_at, updated_at)"
            f" VALUES (1, 'mira', 'm@x', 'h', 'user', true, 0, {at}, {at})",
            "INSERT INTO projects (id, slug, name, case_sensitive, created_at,"
            " force_release_policy, last_seq, last_fencing_token, purged_through_seq)"
            f" VALUES (1, 'game', 'Game', false, {at}, 'admins', 3, 2, 1)",
            "INSERT INTO locks (id, project_id, path, path_key, owner_id, acquired_at,"
            f" fencing_token) VALUES (7, 1, 'A.uasset', 'a.uasset', 1, {at}, 2)",
            *(
                "INSERT INTO lock_events (project_id, seq, kind, lock_id, path, owner_id,"
                " owner_username, acquired_at, fencing_token, at) VALUES"
                f" (1, {seq}, '{kind}', {lock_id}, 'A.uasset', 1, 'mira', {at}, {token}, {at})"
                for seq, kind, lock_id, token in [(2, "RELEASED", 6, 1), (3, "ACQUIRED", 7, 2)]
            ),
        )
    )
    asyncio.run(migrations.upgrade(url))
    [(stream_id, scope, last_seq, purged)] = asyncio.run(
        _rows(url, "SELECT id, scope, last_seq, purged_through_seq FROM streams")
    )
    assert (scope, last_seq, purged) == ("locks:game", 3, 1)
    assert asyncio.run(_rows(url, "SELECT stream_id FROM projects")) == [(stream_id,)]
    assert asyncio.run(_rows(url, "SELECT stream_id, seq FROM lock_events ORDER BY seq")) == [
        (stream_id, 2),
        (stream_id, 3),
    ]
    assert asyncio.run(_rows(url, "SELECT consumer, seq FROM stream_cursors")) == [("mail", 3)]
    assert asyncio.run(_rows(url, "SELECT fencing_token FROM locks")) == [(2,)]
    asyncio.run(migrations.downgrade(url, "0009"))
    assert asyncio.run(_rows(url, "SELECT last_seq, purged_through_seq FROM projects")) == [(3, 1)]
    assert asyncio.run(_rows(url, "SELECT project_id, seq FROM lock_events ORDER BY seq")) == [
        (1, 2),
        (1, 3),
    ]


def test_setting_changes_move_into_the_audit_log_and_back(fresh_database):
    """0012: each recorded setting change becomes an audit entry of resource ("setting", name),
    the SMTP password still masked; the downgrade puts them back."""
    url = fresh_database()
    asyncio.run(migrations.upgrade(url, "0011"))
    at = "'2026-11-30 10:00:00+00:00'"
    asyncio.run(
        _run(
            url,
            "INSERT INTO setting_changes (name, old_value, new_value, changed_by,"
            f" changed_by_username, at) VALUES ('smtp_host', NULL, '\"mail.x\"', 1, 'ada', {at})",
            "INSERT INTO setting_changes (name, old_value, new_value, changed_by,"
            f" changed_by_username, at) VALUES ('smtp_password', '\"***\"', '\"***\"', 1, 'ada',"
            f" {at})",
            "INSERT INTO setting_changes (name, old_value, new_value, changed_by,"
            f" changed_by_username, at) VALUES ('lock_alerts', '\"none\"', '\"everyone\"', NULL,"
            f" 'gone', {at})",
        )
    )
    asyncio.run(migrations.upgrade(url, "0012"))
    rows = asyncio.run(
        _rows(
            url,
            "SELECT actor_id, actor_username, action, resource_type, resource_id, changes,"
            " snapshot FROM audit_log ORDER BY id",
        )
    )
    assert [(*row[:5], json.loads(row[5]), row[6]) for row in rows] == [
        (1, "ada", "update", "setting", "smtp_host", {"smtp_host": [None, "mail.x"]}, None),
        (
            1,
            "ada",
            "update",
            "setting",
            "smtp_password",
            {"smtp_password": ["(secret)", "(secret)"]},
            None,
        ),
        (
            None,
            "gone",
            "update",
            "setting",
            "lock_alerts",
            {"lock_alerts": ["none", "everyone"]},
            None,
        ),
    ]
    assert "setting_changes" not in asyncio.run(table_names(url))
    asyncio.run(migrations.downgrade(url, "0011"))
    assert asyncio.run(
        _rows(
            url,
            "SELECT name, old_value, new_value, changed_by, changed_by_username"
            " FROM setting_changes ORDER BY id",
        )
    ) == [
        ("smtp_host", None, '"mail.x"', 1, "ada"),
        ("smtp_password", '"***"', '"***"', 1, "ada"),
        ("lock_alerts", '"none"', '"everyone"', None, "gone"),
    ]
    assert "audit_log" not in asyncio.run(table_names(url))
