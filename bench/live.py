"""Live delivery: commit-to-delivery p99 at 100, 1,000 and 5,000 websocket subscribers against a
plain websocket broadcast of the same bytes (bench/floors.py); the memory of 10,000 idle
subscribers; and reconnect storms of 5,000 and 10,000 clients connecting at once, as after a
deploy — all acknowledged, all receiving the next change, no errors in the log."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime

import httpx
import websockets

from bench.common import (
    floor_server,
    holdfast,
    raise_open_files,
    rss_mib,
    stop,
    summary,
)

FANOUT = [int(n) for n in os.environ.get("HOLDFAST_BENCH_FANOUT", "100,1000,5000").split(",")]
IDLE = int(os.environ.get("HOLDFAST_BENCH_IDLE", "10000"))
STORMS = [int(n) for n in os.environ.get("HOLDFAST_BENCH_STORMS", "5000,10000").split(",")]
EVENTS = 20
SUBSCRIBE = """subscription { lockEvents(project: "default") {
    seq kind at lock { id path owner { username } fencingToken } } }"""
ACQUIRE = """mutation($p: String!) { acquireLock(project: "default", path: $p) { id } }"""
RELEASE = """mutation($p: String!) { releaseLock(project: "default", path: $p) { id } }"""


async def _subscriber(ws_url: str, token: str, connected: asyncio.Semaphore | None = None):
    socket_ = await websockets.connect(
        ws_url,
        subprotocols=["graphql-transport-ws"],
        max_queue=None,
        ping_interval=None,
        open_timeout=120,
        close_timeout=1,
        compression=None,
    )
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
    await socket_.send(json.dumps(init))
    ack = json.loads(await asyncio.wait_for(socket_.recv(), 120))
    assert ack["type"] == "connection_ack", ack
    await socket_.send(
        json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
    )
    await socket_.send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(socket_.recv(), 120))["type"] == "pong"
    return socket_


async def subscribers(ws_url: str, token: str, count: int, at_once: int = 200) -> list:
    sockets = []
    for start in range(0, count, at_once):
        sockets += await asyncio.gather(
            *(_subscriber(ws_url, token) for _ in range(min(at_once, count - start)))
        )
    return sockets


async def close_all(sockets: list) -> None:
    await asyncio.gather(*(socket_.close() for socket_ in sockets), return_exceptions=True)


def _seq(message: dict) -> int:
    return next(iter(message["payload"]["data"].values()))["seq"]


async def _collect(sockets: list, expected: int) -> list[tuple[int, float]]:
    """(seq, arrival time) of every message every socket receives."""
    arrivals: list[tuple[int, float]] = []

    async def read(socket_) -> None:
        for _ in range(expected):
            message = json.loads(await socket_.recv())
            arrivals.append((_seq(message), time.perf_counter()))

    await asyncio.wait_for(asyncio.gather(*(read(socket_) for socket_ in sockets)), 600)
    return arrivals


async def _changes(server, count: int) -> dict[int, float]:
    """Make `count` lock changes; when each was known committed (its response arrived)."""
    committed: dict[int, float] = {}
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}
    ) as http:
        first = (
            await http.post("/graphql", json={"query": '{ locks(project: "default") { seq } }'})
        ).json()
        seq = first["data"]["locks"]["seq"]
        for index in range(count // 2):
            path = f"Bench/Delivery{index}.uasset"
            for query in (ACQUIRE, RELEASE):
                body = (
                    await http.post("/graphql", json={"query": query, "variables": {"p": path}})
                ).json()
                assert "errors" not in body, body
                seq += 1
                committed[seq] = time.perf_counter()
                await asyncio.sleep(0.1)
    return committed


SAMPLE = {
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


async def holdfast_fanout(server, count: int) -> dict:
    """Latency from commit (the writer's answer arrived: delivery may even come first) to
    each subscriber's arrival."""
    sockets = await subscribers(server.ws_url, server.token, count)
    try:
        reader = asyncio.create_task(_collect(sockets, EVENTS))
        committed = await _changes(server, EVENTS)
        arrivals = await reader
    finally:
        await close_all(sockets)
    return summary([arrival - committed[seq] for seq, arrival in arrivals])


async def floor_fanout(url: str, count: int) -> dict:
    ws_url = url.replace("http://", "ws://") + "/ws"
    sockets = []
    for start in range(0, count, 200):
        sockets += await asyncio.gather(
            *(
                websockets.connect(ws_url, max_queue=None, ping_interval=None, compression=None)
                for _ in range(min(200, count - start))
            )
        )
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            while (await http.get("/clients")).json()["clients"] < count:
                await asyncio.sleep(0.05)
            reader = asyncio.create_task(_collect(sockets, EVENTS))
            message = json.loads(json.dumps(SAMPLE))
            sent: dict[int, float] = {}
            for seq in range(1, EVENTS + 1):
                message["payload"]["data"]["lockEvents"]["seq"] = seq
                message["payload"]["data"]["lockEvents"]["at"] = datetime.now(UTC).isoformat()
                sent[seq] = time.perf_counter()
                await http.post("/emit", content=json.dumps(message))
                await asyncio.sleep(0.1)
            latencies = [arrival - sent[seq] for seq, arrival in await reader]
    finally:
        await close_all(sockets)
    return summary(latencies)


async def idle_memory(server) -> dict:
    before = rss_mib(server.process.pid)
    sockets = await subscribers(server.ws_url, server.token, IDLE)
    try:
        await asyncio.sleep(2)
        during = rss_mib(server.process.pid)
    finally:
        await close_all(sockets)
    return {
        "subscribers": IDLE,
        "rss_before_mib": round(before),
        "rss_mib": round(during),
        "per_subscriber_kib": round((during - before) * 1024 / IDLE, 1),
    }


async def storm(server, count: int) -> dict:
    """`count` clients connect at once; all must be acknowledged and get the next change."""
    errors_before = len(server.errors_in_log())
    started = time.perf_counter()
    results = await asyncio.gather(
        *(_subscriber(server.ws_url, server.token) for _ in range(count)), return_exceptions=True
    )
    acknowledged = time.perf_counter() - started
    sockets = [result for result in results if not isinstance(result, BaseException)]
    failures = [repr(result) for result in results if isinstance(result, BaseException)]
    try:
        reader = asyncio.create_task(_collect(sockets, 1))
        await _one_change(server)
        received = len(await reader)
    finally:
        await close_all(sockets)
    return {
        "clients": count,
        "acknowledged": len(sockets),
        "seconds_to_acknowledge_all": round(acknowledged, 2),
        "received_next_change": received,
        "failures": failures[:5],
        "new_errors_in_log": server.errors_in_log()[errors_before:][:5],
    }


async def _one_change(server) -> None:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}
    ) as http:
        body = (
            await http.post(
                "/graphql", json={"query": ACQUIRE, "variables": {"p": "Bench/Storm.uasset"}}
            )
        ).json()
        assert "errors" not in body, body
        await http.post(
            "/graphql", json={"query": RELEASE, "variables": {"p": "Bench/Storm.uasset"}}
        )


async def run() -> dict:
    raise_open_files()
    results: dict = {"fanout": {}, "storms": []}
    async with holdfast("live") as server:
        process, url = floor_server("bench.floors:app", server.database_url, "floor-live")
        try:
            for count in FANOUT:
                ours = await holdfast_fanout(server, count)
                floor = await floor_fanout(url, count)
                ratio = round(ours["p99_ms"] / floor["p99_ms"], 2)
                results["fanout"][str(count)] = {"holdfast": ours, "floor": floor, "ratio": ratio}
                print(
                    f"fan-out to {count}: p99 {ours['p99_ms']} ms, plain broadcast "
                    f"{floor['p99_ms']} ms: {ratio}x"
                )
        finally:
            stop(process)
        results["idle"] = await idle_memory(server)
        print(
            f"{IDLE} idle subscribers: {results['idle']['rss_mib']} MiB resident "
            f"({results['idle']['per_subscriber_kib']} KiB each)"
        )
        for count in STORMS:
            outcome = await storm(server, count)
            results["storms"].append(outcome)
            print(
                f"storm of {count}: {outcome['acknowledged']} acknowledged in "
                f"{outcome['seconds_to_acknowledge_all']} s, {outcome['received_next_change']} got "
                f"the next change, {len(outcome['new_errors_in_log'])} errors logged"
            )
        results["server_errors"] = server.errors_in_log()
    return results
