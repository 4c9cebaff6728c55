"""The `holdfast` CLI as a real subprocess, in real git repositories, against a real server.

One server (on a database of its own) serves the whole package, so each test makes its own users
and paths; tests that restart a server start their own.
"""

import asyncio
import itertools
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from db import migrations
from tests.conftest import (
    ADMIN_PASSWORD,
    USER_PASSWORD,
    settings_for,
    start_server,
    stop_server,
)
from tests.support.graphql import Sync

_names = itertools.count(1)


@pytest.fixture(scope="package")
def cli_server(fresh_database, tmp_path_factory):
    url = fresh_database()
    asyncio.run(migrations.upgrade(url))
    running = start_server(settings_for(url), tmp_path_factory.mktemp("cli-server") / "log")
    yield running
    stop_server(running)


Gql = Sync
"""The tests' one GraphQL client, synchronous: these tests drive subprocesses."""


def held(gql: Sync, path: str, project: str = "default") -> dict | None:
    """The lock on `path`, as the API shows it (None when free)."""
    return gql.data(
        "query($p: String!, $path: String!) { lock(project: $p, path: $path) { path "
        "owner { username } branch comment } }",
        {"p": project, "path": path},
    )["lock"]


def base_env(config: Path) -> dict[str, str]:
    """No HOLDFAST_* leaks in; a config file of this user's own; git without global config."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HOLDFAST_")}
    env.update(
        HOLDFAST_CLI_CONFIG=str(config),
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="Test",
        GIT_COMMITTER_EMAIL="test@example.com",
    )
    return env


@dataclass
class Cli:
    """One person's `holdfast`: their own config file, run in `cwd`."""

    name: str
    config: Path
    cwd: Path
    server: str
    env: dict[str, str] = field(default_factory=dict)

    def environ(self, **extra: str) -> dict[str, str]:
        return {**base_env(self.config), **self.env, **extra}

    def __call__(
        self, *args: str, input: str | None = None, cwd: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "server.cli", *args],
            cwd=cwd or self.cwd,
            env=self.environ(**env),
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(self, *args: str, **kwargs) -> str:
        result = self(*args, **kwargs)
        assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
        return result.stdout

    def login(self, password: str = USER_PASSWORD) -> None:
        self.ok("login", "--server", self.server, "--username", self.name, input=password + "\n")

    def git(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["git", *args],
            cwd=cwd or self.cwd,
            env=self.environ(),
            capture_output=True,
            text=True,
            timeout=60,
        )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """stderr must be exactly one `holdfast: …` line, no traceback."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("holdfast: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def repo(tmp_path) -> Path:
    """A real git repository with one commit, on branch `main`."""
    path = tmp_path / "repo"
    path.mkdir()
    env = base_env(tmp_path / "unused.json")
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "start"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)
    return path


@pytest.fixture
def admin_gql(cli_server) -> Gql:
    gql = Gql(cli_server.url)
    gql.sign_in("admin", ADMIN_PASSWORD)
    return gql


@pytest.fixture
def people(cli_server, admin_gql, repo, tmp_path):
    """`make("alice")`: a fresh user (unique name) and their CLI, not yet logged in."""

    def make(name: str, role: str = "USER", login: bool = True) -> Cli:
        username = f"{name}{next(_names)}"
        admin_gql.create_user(username, role)
        cli = Cli(username, tmp_path / f"{username}.json", repo, cli_server.url)
        if login:
            cli.login()
        return cli

    return make


def unique_dir() -> str:
    """A path prefix no other test uses (the package shares one server)."""
    return f"Content/T{next(_names)}"
