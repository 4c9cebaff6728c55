"""What every benchmark shares: a throwaway PostgreSQL database, a real `holdfast serve`, the
floors, and numbers that are ratios against a floor measured in the same run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"
DATABASE_URL = os.environ.get(
    "HOLDFAST_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("HOLDFAST_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SECONDS = float(os.environ.get("HOLDFAST_BENCH_SECONDS", "5"))
PASSWORD = "bench-password-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(latencies: list[float]) -> dict:
    if not latencies:
        return {"count": 0}
    return {
        "count": len(latencies),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
    }


def raise_open_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start(command: list[str], env: dict[str, str], url: str, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        preexec_fn=raise_open_files,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{command} exited early:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{command} did not start:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Holdfast:
    """A `holdfast serve` on a throwaway database, signed in as its admin."""

    url: str
    database_url: str
    process: subprocess.Popen
    log: Path
    token: str = ""
    api_token: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"

    async def graphql(self, query: str, variables: dict | None = None, token: str | None = None):
        headers = (
            {"Authorization": f"Bearer {token or self.token}"} if (token or self.token) else {}
        )
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as http:
            body = (
                await http.post(
                    "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
                )
            ).json()
        if "errors" in body:
            raise RuntimeError(body["errors"])
        return body["data"]

    def errors_in_log(self) -> list[str]:
        return [
            line
            for line in self.log.read_text().splitlines()
            if " ERROR " in line or "Traceback" in line or "QueuePool limit" in line
        ]


@contextlib.asynccontextmanager
async def throwaway_database() -> AsyncIterator[str]:
    name = f"holdfast_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(dsn(DATABASE_URL))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield make_url(DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(dsn(DATABASE_URL))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def environment(database_url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")}
    env.update(
        {
            "HOLDFAST_CONFIG": os.devnull,
            "HOLDFAST_DATABASE_URL": database_url,
            "HOLDFAST_REDIS_URL": REDIS_URL,
            "HOLDFAST_REDIS_PREFIX": f"bench-{secrets.token_hex(4)}",
            "HOLDFAST_ADMIN_PASSWORD": PASSWORD,
            "HOLDFAST_LOGIN_RATE_LIMIT": "100000/minute",
            "HOLDFAST_LOGIN_ADDRESS_RATE_LIMIT": "100000/minute",
            "HOLDFAST_SUBSCRIBER_QUEUE_SIZE": "10000",
            "HOLDFAST_LOG_LEVEL": "WARNING",
            "HOLDFAST_ACCESS_TOKEN_TTL": "3600",
        }
    )
    env.update({f"HOLDFAST_{key.upper()}": value for key, value in settings.items()})
    return env


@contextlib.asynccontextmanager
async def holdfast(name: str, **settings: str) -> AsyncIterator[Holdfast]:
    RESULTS.mkdir(exist_ok=True)
    async with throwaway_database() as database_url:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = RESULTS / f"{name}.server.log"
        process = start(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
            environment(database_url, **settings),
            f"{url}/healthz",
            log,
        )
        try:
            server = Holdfast(url, database_url, process, log)
            login = await server.graphql(
                'mutation($p: String!) { login(username: "admin", password: $p) { accessToken } }',
                {"p": PASSWORD},
            )
            server.token = login["login"]["accessToken"]
            created = await server.graphql('mutation { createApiToken(name: "bench") { token } }')
            server.api_token = created["createApiToken"]["token"]
            yield server
        finally:
            stop(process)


def floor_server(module: str, database_url: str, log_name: str) -> tuple[subprocess.Popen, str]:
    """A plain Starlette app from bench/floors.py under uvicorn (no GraphQL)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "BENCH_DATABASE_URL": dsn(database_url)}
    process = start(
        [
            sys.executable,
            "-m",
            "uvicorn",
            module,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--ws-per-message-deflate",
            "false",
        ],
        env,
        f"{url}/healthz",
        RESULTS / f"{log_name}.log",
    )
    return process, url


def wrk(
    url: str,
    body_file: Path | None,
    headers: dict[str, str],
    seconds: float,
    *,
    script: Path | None = None,
) -> dict:
    """Requests per second with wrk -c16: a GET, a POST of the body in `body_file`, or the
    requests a Lua `script` makes. Any non-2xx answer fails the run (a fast 400 is no result)."""
    lines = ["wrk.method = 'GET'"]
    if body_file is not None:
        lines = [
            "wrk.method = 'POST'",
            f"local f = io.open('{body_file}'); wrk.body = f:read('*a'); f:close()",
        ]
    if script is not None:
        lines = ["wrk.method = 'POST'", script.read_text()]
    lines += [f"wrk.headers['{key}'] = '{value}'" for key, value in headers.items()]
    lines += [
        "local threads = {}",
        "setup = function(thread)",
        "  table.insert(threads, thread)",
        "  thread:set('tid', #threads)",
        "end",
        "init = function(args) graphql_errors = 0 end",
        "response = function(status, headers, body)",
        "  if string.find(body, '\"errors\"', 1, true) then",
        "    graphql_errors = graphql_errors + 1",
        "  end",
        "end",
        "done = function(summary, latency, requests)",
        "  local errors = summary.errors.status",
        "  for _, thread in ipairs(threads) do errors = errors + thread:get('graphql_errors') end",
        "  io.write(string.format('RESULT %d %d %d %d\\n', summary.requests,"
        " errors, summary.duration, latency:percentile(99)))",
        "end",
    ]
    generated = RESULTS / "wrk-run.lua"
    generated.write_text("\n".join(lines) + "\n")
    output = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{int(seconds)}s", "-s", str(generated), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = next(line for line in output.splitlines() if line.startswith("RESULT"))
    requests, errors, duration_us, p99_us = (int(value) for value in result.split()[1:])
    if errors:
        raise RuntimeError(f"wrk saw {errors} failed answers from {url}:\n{output}")
    return {
        "requests_per_s": round(requests / (duration_us / 1e6), 1),
        "requests": requests,
        "p99_ms": round(p99_us / 1000, 2),
    }


class RawConnection:
    """One keep-alive HTTP/1.1 connection with nothing in between: httpx spends milliseconds
    per request when it holds hundreds of connections, which would measure the client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, url: str) -> RawConnection:
        parsed = httpx.URL(url)
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        return cls(reader, writer, f"{parsed.host}:{parsed.port}")

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict | None = None
    ) -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(body)}"]
        lines += [f"{key}: {value}" for key, value in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def write_results(name: str, results: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")


async def gather_in_batches(coroutines, batch: int = 200) -> list:
    results = []
    coroutines = list(coroutines)
    for start_at in range(0, len(coroutines), batch):
        results += await asyncio.gather(*coroutines[start_at : start_at + batch])
    return results
