"""Test chain shared by both backends.

Embedded default (SQLite file, in-process bus) unless `HOLDFAST_TEST_DATABASE_URL` and/or
`HOLDFAST_TEST_REDIS_URL` are set, in which case the suite runs on PostgreSQL and Redis: a
throwaway database is created beside the one named and dropped at the end, and every test gets
its own Redis key prefix.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.engine import make_url

from db import migrations
from db.engine import create_engine
from db.models import metadata
from server.app import create_app
from server.settings import SETTINGS, Settings, load_settings
from tests.support.accounts import ADMIN_PASSWORD, USER_PASSWORD
from tests.support.graphql import GraphQL

__all__ = ["ADMIN_PASSWORD", "USER_PASSWORD"]

ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE_URL = os.environ.get("HOLDFAST_TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("HOLDFAST_TEST_REDIS_URL")


def pytest_report_header(config) -> str:
    database = "postgresql" if TEST_DATABASE_URL else "sqlite"
    return f"holdfast backends: database={database} bus={'redis' if TEST_REDIS_URL else 'memory'}"


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _create_postgres_database(url: str, name: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _drop_postgres_database(url: str, name: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def fresh_database(tmp_path_factory) -> Iterator[callable]:
    """Make empty databases (no migrations applied) on the backend under test."""
    made: list[str] = []

    def make() -> str:
        if TEST_DATABASE_URL:
            name = f"holdfast_test_{secrets.token_hex(6)}"
            asyncio.run(_create_postgres_database(TEST_DATABASE_URL, name))
            made.append(name)
            return (
                make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
            )
        path = tmp_path_factory.mktemp("db") / "holdfast.db"
        return f"sqlite+aiosqlite:///{path}"

    yield make
    for name in made:
        asyncio.run(_drop_postgres_database(TEST_DATABASE_URL, name))


@pytest.fixture(scope="session")
def database_url(fresh_database) -> str:
    url = fresh_database()
    asyncio.run(migrations.upgrade(url))
    return url


async def _empty_tables(url: str) -> None:
    engine = create_engine(url, pooled=False)
    tables = [table.name for table in metadata.sorted_tables]
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            quoted = ", ".join(f'"{name}"' for name in tables)
            await connection.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
        else:
            for name in reversed(tables):
                await connection.execute(text(f'DELETE FROM "{name}"'))
    await engine.dispose()


def settings_for(database_url: str) -> Settings:
    """Settings for a test server: its own Redis prefix, cheap password hashing, a known
    admin."""
    return load_settings(environ={}, config_file=os.devnull).replace(
        database_url=database_url,
        redis_url=TEST_REDIS_URL,
        redis_prefix=f"holdfast-test-{secrets.token_hex(4)}",
        admin_password=ADMIN_PASSWORD,
        admin_email="admin@example.com",
        login_rate_limit="1000/minute",
        password_hash_time_cost=1,
        password_hash_memory_kib=1024,
        migrate_on_start=False,
        data_dir=tempfile.mkdtemp(prefix="holdfast-test-data-"),
    )


@pytest.fixture
def settings(database_url) -> Iterator[Settings]:
    """Settings for one test; the tables are emptied after it."""
    yield settings_for(database_url)
    asyncio.run(_empty_tables(database_url))


@pytest.fixture
async def app(settings):
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def api(app) -> AsyncIterator[GraphQL]:
    """The GraphQL client on the app in this process."""
    async with GraphQL(app) as client:
        yield client


@pytest.fixture
async def admin(api) -> str:
    """An admin access token; the api client sends it by default."""
    api.token = (await api.login("admin", ADMIN_PASSWORD))["accessToken"]
    return api.token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_environment(settings: Settings) -> dict[str, str]:
    """The environment that makes a server process use these settings.

    Settings admins may change at run time go through a config file, since the environment
    would pin them; the rest are `HOLDFAST_*` variables.
    """
    from domain.settings import DEFINITIONS as RUNTIME_SETTINGS

    env = {key: value for key, value in os.environ.items() if not key.startswith("HOLDFAST_")}
    lines = []
    for setting in SETTINGS:
        value = getattr(settings, setting.name.lower())
        if value is None:
            continue
        if setting.name.lower() in RUNTIME_SETTINGS:
            lines.append(f"{setting.name.lower()} = {json.dumps(value)}")
            continue
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, tuple):
            value = ",".join(value)
        env[f"HOLDFAST_{setting.name}"] = str(value)
    handle, path = tempfile.mkstemp(prefix="holdfast-", suffix=".toml")
    with os.fdopen(handle, "w") as config:
        config.write("\n".join(lines) + "\n")
    env["HOLDFAST_CONFIG"] = path
    return env


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen
    log: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"

    def output(self) -> str:
        return self.log.read_text()


def start_server(
    settings: Settings, log: Path, *extra_args: str, port: int | None = None
) -> ServerProcess:
    """`holdfast serve` as a real uvicorn process; waits until /healthz answers. A fixed
    `port` lets a test restart a server where its clients expect it."""
    port = port or free_port()
    handle = log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port), *extra_args],
        env=settings_environment(settings),
        cwd=ROOT,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return ServerProcess(url, process, log)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not start:\n{log.read_text()}")


def stop_server(server: ServerProcess) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def server(settings, tmp_path) -> Iterator[ServerProcess]:
    running = start_server(settings, tmp_path / "server.log")
    yield running
    stop_server(running)


def start_redis(port: int, directory) -> subprocess.Popen:
    """A redis-server of a test's own, keeping nothing on disk."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed for this test (Debian package redis-server)"
    return subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def private_redis(tmp_path):
    """A Redis server of this test's own, so the test may kill it."""
    port = free_port()
    process = start_redis(port, tmp_path)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield process, f"redis://127.0.0.1:{port}/0"
    process.kill()
    process.wait()


@pytest.fixture
def shared_redis_url(request) -> str:
    """Redis that several server processes share: the one under test, else a private one."""
    if TEST_REDIS_URL:
        return TEST_REDIS_URL
    return request.getfixturevalue("private_redis")[1]


class MailCatcher:
    """A real SMTP server (aiosmtpd) in this process; what it receives lands in `messages`."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        import email
        from email import policy

        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    catcher = MailCatcher()
    controller = Controller(catcher, hostname="127.0.0.1", port=free_port())
    controller.start()
    catcher.port = controller.port
    yield catcher
    controller.stop()
