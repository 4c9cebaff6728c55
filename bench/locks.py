"""Lock benchmark on PostgreSQL: Holdfast against floors measured in the same run.

(a) acquire+release pairs per second, and their p50/p99, through GraphQL over HTTP against a real
    `holdfast serve`, against raw asyncpg doing the same SQL from this machine;
(b) time from commit to delivery at 1, 100 and 1,000 websocket subscribers, against a plain
    websocket broadcast of the same bytes.

Prints the ratios and writes them to bench-results/locks.json. Needs PostgreSQL and Redis:
HOLDFAST_BENCH_DATABASE_URL (a database on the server it names is used to create a throwaway
one; default postgresql+asyncpg://postgres@127.0.0.1:5432/test) and HOLDFAST_BENCH_REDIS_URL
(default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx
import websockets
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get(
    "HOLDFAST_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("HOLDFAST_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
WORKERS = int(os.environ.get("HOLDFAST_BENCH_WORKERS", "8"))
SECONDS = float(os.environ.get("HOLDFAST_BENCH_SECONDS", "5"))
SUBSCRIBER_COUNTS = [1, 100, 1000]
EVENTS_PER_ROUND = 20
PASSWORD = "bench-password-1"

SUBSCRIBE = """subscription { lockEvents(project: "default") {
    seq kind at lock { id path owner { username } fencingToken } } }"""
ACQUIRE = """mutation($p: String!) { acquireLock(project: "default", path: $p) { id } }"""
RELEASE = """mutation($p: String!) { releaseLock(project: "default", path: $p) { id } }"""


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
    return {
        "count": len(latencies),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
    }


def start(command: list[str], env: dict[str, str], url: str, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{command[2:4]} exited early:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{command} did not start:\n{log.read_text()[-3000:]}")


# -- (a) acquire + release -------------------------------------------------------------------


async def graphql_pairs(url: str, token: str) -> tuple[int, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + SECONDS
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=WORKERS)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as http:

        async def worker(index: int) -> None:
            path = f"Bench/Worker{index}.uasset"
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                for query in (ACQUIRE, RELEASE):
                    body = (
                        await http.post("/graphql", json={"query": query, "variables": {"p": path}})
                    ).json()
                    assert "errors" not in body, body
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker(index) for index in range(WORKERS)))
    return len(latencies), latencies


async def asyncpg_pairs(url: str) -> tuple[int, list[float]]:
    """The same statements Holdfast runs for an acquire and a release, straight through asyncpg."""
    pool = await asyncpg.create_pool(dsn(url), min_size=WORKERS, max_size=WORKERS)
    owner = await pool.fetchval("SELECT id FROM users WHERE username = 'admin'")
    latencies: list[float] = []
    deadline = time.perf_counter() + SECONDS

    async def acquire(connection, path: str) -> None:
        async with connection.transaction():
            project = await connection.fetchrow(
                "SELECT id, case_sensitive, archived_at, last_seq, last_fencing_token "
                "FROM projects WHERE slug = 'default' FOR UPDATE"
            )
            await connection.fetch(
                "SELECT * FROM locks WHERE project_id = $1 AND path_key = ANY($2::varchar[])",
                project["id"],
                [path.lower()],
            )
            now = datetime.now().astimezone()
            lock_id = await connection.fetchval(
                "INSERT INTO locks (project_id, path, path_key, owner_id, acquired_at, "
                "fencing_token) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                project["id"],
                path,
                path.lower(),
                owner,
                now,
                project["last_fencing_token"] + 1,
            )
            await connection.execute(
                "INSERT INTO lock_events (project_id, seq, kind, lock_id, path, owner_id, "
                "owner_username, acquired_at, fencing_token, actor_id, actor_username, at) "
                "VALUES ($1, $2, 'ACQUIRED', $3, $4, $5, 'admin', $6, $7, $5, 'admin', $6)",
                project["id"],
                project["last_seq"] + 1,
                lock_id,
                path,
                owner,
                now,
                project["last_fencing_token"] + 1,
            )
            await connection.execute(
                "UPDATE projects SET last_seq = $1, last_fencing_token = $2 WHERE id = $3",
                project["last_seq"] + 1,
                project["last_fencing_token"] + 1,
                project["id"],
            )

    async def release(connection, path: str) -> None:
        async with connection.transaction():
            project = await connection.fetchrow(
                "SELECT id, last_seq FROM projects WHERE slug = 'default' FOR UPDATE"
            )
            lock = await connection.fetchrow(
                "SELECT * FROM locks WHERE project_id = $1 AND path_key = ANY($2::varchar[])",
                project["id"],
                [path.lower()],
            )
            now = datetime.now().astimezone()
            await connection.execute(
                "INSERT INTO lock_events (project_id, seq, kind, lock_id, path, owner_id, "
                "owner_username, acquired_at, fencing_token, actor_id, actor_username, at) "
                "VALUES ($1, $2, 'RELEASED', $3, $4, $5, 'admin', $6, $7, $5, 'admin', $8)",
                project["id"],
                project["last_seq"] + 1,
                lock["id"],
                path,
                owner,
                lock["acquired_at"],
                lock["fencing_token"],
                now,
            )
            await connection.execute("DELETE FROM locks WHERE id = $1", lock["id"])
            await connection.execute(
                "UPDATE projects SET last_seq = $1 WHERE id = $2",
                project["last_seq"] + 1,
                project["id"],
            )

    async def worker(index: int) -> None:
        path = f"Floor/Worker{index}.uasset"
        async with pool.acquire() as connection:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await acquire(connection, path)
                await release(connection, path)
                latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker(index) for index in range(WORKERS)))
    await pool.close()
    return len(latencies), latencies


# -- (b) commit to delivery ------------------------------------------------------------------


async def open_subscribers(ws_url: str, token: str, count: int) -> list:
    sockets = []

    async def one():
        socket_ = await websockets.connect(
            ws_url, subprotocols=["graphql-transport-ws"], max_queue=None, ping_interval=None
        )
        await socket_.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        assert json.loads(await socket_.recv())["type"] == "connection_ack"
        await socket_.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
        )
        await socket_.send(json.dumps({"type": "ping"}))
        assert json.loads(await socket_.recv())["type"] == "pong"
        sockets.append(socket_)

    for start in range(0, count, 100):
        await asyncio.gather(*(one() for _ in range(min(100, count - start))))
    return sockets


async def collect(sockets: list, expected: int, stamp) -> list[float]:
    """Read `expected` messages on every socket; latency = arrival - the event's own time."""
    latencies: list[float] = []

    async def read(socket_) -> None:
        for _ in range(expected):
            message = json.loads(await socket_.recv())
            latencies.append(time.time() - stamp(message))

    await asyncio.wait_for(asyncio.gather(*(read(socket_) for socket_ in sockets)), 300)
    return latencies


def event_time(message: dict) -> float:
    return datetime.fromisoformat(message["payload"]["data"]["lockEvents"]["at"]).timestamp()


async def holdfast_delivery(url: str, ws_url: str, token: str, count: int) -> tuple[dict, str]:
    sockets = await open_subscribers(ws_url, token, count)
    reader = asyncio.create_task(collect(sockets, EVENTS_PER_ROUND, event_time))
    sample = ""
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        for index in range(EVENTS_PER_ROUND // 2):
            path = f"Bench/Delivery{index}.uasset"
            for query in (ACQUIRE, RELEASE):
                await http.post("/graphql", json={"query": query, "variables": {"p": path}})
                await asyncio.sleep(0.1)
    latencies = await reader
    for socket_ in sockets:
        await socket_.close()
    sample = json.dumps(
        {
            "id": "1",
            "type": "next",
            "payload": {
                "data": {
                    "lockEvents": {
                        "seq": 1,
                        "kind": "ACQUIRED",
                        "at": "",
                        "lock": {
                            "id": "1",
                            "path": "Bench/Delivery0.uasset",
                            "owner": {"username": "admin"},
                            "fencingToken": 1,
                        },
                    }
                }
            },
        }
    )
    return summary(latencies), sample


async def floor_delivery(url: str, count: int, sample: str) -> dict:
    ws_url = url.replace("http://", "ws://") + "/ws"
    sockets = []
    for start in range(0, count, 100):
        sockets += await asyncio.gather(
            *(
                websockets.connect(ws_url, max_queue=None, ping_interval=None)
                for _ in range(min(100, count - start))
            )
        )
    async with httpx.AsyncClient(base_url=url) as http:
        while (await http.get("/clients")).json()["clients"] < count:
            await asyncio.sleep(0.05)
        reader = asyncio.create_task(collect(sockets, EVENTS_PER_ROUND, event_time))
        message = json.loads(sample)
        for _ in range(EVENTS_PER_ROUND):
            message["payload"]["data"]["lockEvents"]["at"] = datetime.now().astimezone().isoformat()
            await http.post("/emit", content=json.dumps(message))
            await asyncio.sleep(0.1)
        latencies = await reader
    for socket_ in sockets:
        await socket_.close()
    return summary(latencies)


# -- the run ----------------------------------------------------------------------------------


async def main() -> dict:
    name = f"holdfast_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(dsn(DATABASE_URL))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = make_url(DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    logs = ROOT / "bench-results"
    logs.mkdir(exist_ok=True)
    server_port, floor_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")},
        "HOLDFAST_CONFIG": os.devnull,
        "HOLDFAST_DATABASE_URL": url,
        "HOLDFAST_REDIS_URL": REDIS_URL,
        "HOLDFAST_REDIS_PREFIX": name,
        "HOLDFAST_ADMIN_PASSWORD": PASSWORD,
        "HOLDFAST_LOGIN_RATE_LIMIT": "1000/minute",
        "HOLDFAST_SUBSCRIBER_QUEUE_SIZE": "10000",
        "HOLDFAST_LOG_LEVEL": "WARNING",
    }
    server_url = f"http://127.0.0.1:{server_port}"
    floor_url = f"http://127.0.0.1:{floor_port}"
    server = start(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(server_port)],
        env,
        f"{server_url}/healthz",
        logs / "server.log",
    )
    floor = start(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.broadcast_floor:app",
            "--port",
            str(floor_port),
            "--log-level",
            "warning",
            "--ws-per-message-deflate",
            "false",
        ],
        env,
        f"{floor_url}/clients",
        logs / "floor.log",
    )
    results: dict = {"workers": WORKERS, "seconds": SECONDS, "database": "postgresql"}
    try:
        async with httpx.AsyncClient(base_url=server_url) as http:
            login = (
                await http.post(
                    "/graphql",
                    json={
                        "query": 'mutation($p: String!) { login(username: "admin", '
                        "password: $p) { accessToken } }",
                        "variables": {"p": PASSWORD},
                    },
                )
            ).json()
        token = login["data"]["login"]["accessToken"]

        pairs, latencies = await graphql_pairs(server_url, token)
        floor_pairs, floor_latencies = await asyncpg_pairs(url)
        results["acquire_release"] = {
            "graphql": {"pairs_per_s": round(pairs / SECONDS, 1), **summary(latencies)},
            "asyncpg_floor": {
                "pairs_per_s": round(floor_pairs / SECONDS, 1),
                **summary(floor_latencies),
            },
            "ratio": round(pairs / floor_pairs, 3),
        }
        print(
            f"(a) acquire+release: {pairs / SECONDS:.0f} pairs/s through GraphQL, "
            f"{floor_pairs / SECONDS:.0f} with raw asyncpg: ratio "
            f"{results['acquire_release']['ratio']}"
        )
        results["delivery"] = {}
        for count in SUBSCRIBER_COUNTS:
            holdfast, sample = await holdfast_delivery(
                server_url, server_url.replace("http://", "ws://") + "/graphql", token, count
            )
            plain = await floor_delivery(floor_url, count, sample)
            ratio = round(plain["p99_ms"] / holdfast["p99_ms"], 3) if holdfast["p99_ms"] else None
            results["delivery"][str(count)] = {
                "holdfast": holdfast,
                "broadcast_floor": plain,
                "p99_ratio": ratio,
            }
            print(
                f"(b) {count} subscribers: p50 {holdfast['p50_ms']} ms, p99 "
                f"{holdfast['p99_ms']} ms (floor p99 {plain['p99_ms']} ms; ratio {ratio})"
            )
    finally:
        for process in (server, floor):
            process.terminate()
            process.wait(timeout=10)
        admin = await asyncpg.connect(dsn(DATABASE_URL))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    (logs / "locks.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {logs / 'locks.json'}")
    return results


if __name__ == "__main__":
    asyncio.run(main())
