"""Writes: lock acquisition through GraphQL and the Unreal plugin's Git LFS burst, against one
SQL statement doing the same write (seq bump + insert lock + insert event) from raw asyncpg."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import UTC, datetime

import asyncpg

from bench.common import RESULTS, SECONDS, RawConnection, dsn, holdfast, summary, wrk

CLIENTS = 16
BURST = 200

FLOOR_STATEMENT = """
WITH stream AS (
    UPDATE streams SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq
), held AS (
    INSERT INTO locks (project_id, path, path_key, owner_id, acquired_at, fencing_token)
    SELECT $2, $3::varchar, lower($3::varchar), $4, $5, stream.last_seq FROM stream RETURNING *
)
INSERT INTO lock_events (stream_id, seq, kind, lock_id, path, owner_id, owner_username,
    acquired_at, fencing_token, actor_id, actor_username, at)
SELECT $1, held.fencing_token, 'ACQUIRED', held.id, held.path, held.owner_id, 'admin',
    held.acquired_at, held.fencing_token, held.owner_id, 'admin', $5 FROM held
"""

ACQUIRE_LUA = """
counter = 0
request = function()
  counter = counter + 1
  local body = '{"query":"mutation($p: String!) { acquireLock(project: \\\\"%s\\\\", path: $p) '
    .. '{ id } }","variables":{"p":"Bench/%s/%d.uasset"}}'
  return wrk.format("POST", "/graphql", nil,
    string.format(body, "default", tid, counter))
end
"""


async def _ids(database_url: str) -> tuple[int, int, int]:
    connection = await asyncpg.connect(dsn(database_url))
    try:
        row = await connection.fetchrow(
            "SELECT p.id, p.stream_id, u.id AS owner FROM projects p, users u "
            "WHERE p.slug = 'default' AND u.username = 'admin'"
        )
    finally:
        await connection.close()
    return row["id"], row["stream_id"], row["owner"]


async def floor_throughput(database_url: str, seconds: float) -> dict:
    """The one-statement floor: 16 connections, each running the statement back to back."""
    project_id, stream_id, owner = await _ids(database_url)
    pool = await asyncpg.create_pool(dsn(database_url), min_size=CLIENTS, max_size=CLIENTS)
    done, latencies = 0, []
    deadline = time.perf_counter() + seconds

    async def client(index: int) -> None:
        nonlocal done
        counter = 0
        async with pool.acquire() as connection:
            while time.perf_counter() < deadline:
                counter += 1
                started = time.perf_counter()
                await connection.execute(
                    FLOOR_STATEMENT,
                    stream_id,
                    project_id,
                    f"Floor/{index}/{counter}.uasset",
                    owner,
                    datetime.now(UTC),
                )
                latencies.append(time.perf_counter() - started)
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(index) for index in range(CLIENTS)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return {"per_s": round(done / elapsed, 1), **summary(latencies)}


async def floor_burst(database_url: str) -> float:
    """Wall time of 200 floor statements submitted at once to 16 connections."""
    project_id, stream_id, owner = await _ids(database_url)
    pool = await asyncpg.create_pool(dsn(database_url), min_size=CLIENTS, max_size=CLIENTS)

    async def one(index: int) -> None:
        async with pool.acquire() as connection:
            await connection.execute(
                FLOOR_STATEMENT,
                stream_id,
                project_id,
                f"FloorBurst/{index}.uasset",
                owner,
                datetime.now(UTC),
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(index) for index in range(BURST)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return elapsed


async def lfs_burst(server) -> dict:
    """200 parallel `POST /lfs/default/locks` from one user with an API token, as the Unreal
    Git LFS plugin locks a selection through git-lfs: 200 open connections, one lock each."""
    credentials = base64.b64encode(f"admin:{server.api_token}".encode()).decode()
    headers = {
        "Authorization": f"Basic {credentials}",
        "Content-Type": "application/vnd.git-lfs+json",
        "Accept": "application/vnd.git-lfs+json",
    }
    connections = await asyncio.gather(*(RawConnection.open(server.url) for _ in range(BURST)))
    try:
        # A running editor's connections and credentials are warm.
        await asyncio.gather(
            *(c.request("GET", "/lfs/default/locks?limit=1", headers=headers) for c in connections)
        )
        latencies: list[float] = []

        async def one(index: int, connection: RawConnection) -> int:
            body = json.dumps(
                {"path": f"Content/Burst/{index}.uasset", "ref": {"name": "refs/heads/main"}}
            ).encode()
            started = time.perf_counter()
            status, _ = await connection.request("POST", "/lfs/default/locks", body, headers)
            latencies.append(time.perf_counter() - started)
            return status

        started = time.perf_counter()
        statuses = await asyncio.gather(*(one(i, c) for i, c in enumerate(connections)))
        wall = time.perf_counter() - started
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))
    assert statuses == [201] * BURST, sorted(set(statuses))
    return {"wall_s": round(wall, 3), **summary(latencies)}


async def run() -> dict:
    results: dict = {}
    async with holdfast("writes") as server:
        body = RESULTS / "acquire.lua"
        body.write_text(ACQUIRE_LUA)
        graphql = wrk(
            f"{server.url}/graphql",
            None,
            {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"},
            SECONDS,
            script=body,
        )
        floor = await floor_throughput(server.database_url, SECONDS)
        results["acquire"] = {
            "graphql": graphql,
            "one_statement_floor": floor,
            "ratio": round(graphql["requests_per_s"] / floor["per_s"], 3),
        }
        print(
            f"acquire, {CLIENTS} clients: {graphql['requests_per_s']:.0f}/s through GraphQL, "
            f"{floor['per_s']:.0f}/s for the one-statement floor: ratio "
            f"{results['acquire']['ratio']}"
        )
        burst = await lfs_burst(server)
        floor_wall = await floor_burst(server.database_url)
        results["lfs_burst"] = {
            "holdfast": burst,
            "floor_wall_s": round(floor_wall, 3),
            "wall_ratio": round(burst["wall_s"] / floor_wall, 2),
        }
        print(
            f"Git LFS burst of {BURST} locks: {burst['wall_s']} s (p50 {burst['p50_ms']} ms), "
            f"{BURST} floor statements {floor_wall:.3f} s: {results['lfs_burst']['wall_ratio']}x"
        )
        results["server_errors"] = server.errors_in_log()
    return results
