"""`holdfast demo-data` as a real process on a fresh database: the inventory it reports is what
the GraphQL API shows, believable (addresses, statuses, ports, health checks, GPU models, holds
with one overdue), the same on every run, made in seconds; a second run refuses and changes
nothing."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from server.app import create_app
from server.demo_data import DEMO_PASSWORD
from tests.conftest import (
    ADMIN_PASSWORD,
    ROOT,
    settings_environment,
    settings_for,
    start_server,
    stop_server,
)
from tests.support.graphql import GraphQL

SUMMARY = re.compile(
    r"^holdfast: demo data: (\d+) datacenters, (\d+) servers, (\d+) containers, (\d+) services, "
    r"(\d+) GPUs \((\d+) held, 1 overdue\), (\d+) demo users .* in [\d.]+ s$"
)
COUNTS = """{
  datacenters { name location }
  servers(first: 0) { totalCount }
  containers(first: 0) { totalCount }
  services(first: 0) { totalCount }
  gpus(first: 0) { totalCount }
  held: gpus(free: false, first: 0) { totalCount }
}"""
SERVERS = """{ servers(first: 500) { edges { node {
  name hostname managementIp publicIp os status tags cpuCores memoryGb diskGb
  datacenter { name } environment { name }
  containers { name image status ports { hostPort containerPort protocol }
    services { name kind port healthCheckUrl status } }
  gpus { serial model memoryGb holder { username } heldSince dueBack }
} } } }"""


def demo_data(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "demo-data", *args],
        env=settings_environment(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def inventory(api: GraphQL) -> list[dict]:
    await api.sign_in("admin", ADMIN_PASSWORD)
    return [edge["node"] for edge in (await api.data(SERVERS))["servers"]["edges"]]


@pytest.fixture
def fresh_urls(fresh_database) -> list[str]:
    """Two empty databases (made outside the test's event loop)."""
    return [fresh_database(), fresh_database()]


async def test_demo_data_fills_a_fresh_database_once(fresh_urls, tmp_path):
    settings = settings_for(fresh_urls[0])
    started = time.monotonic()
    made = demo_data(settings)
    took = time.monotonic() - started
    assert made.returncode == 0, made.stderr
    lines = made.stdout.strip().splitlines()
    assert len(lines) == 1, made.stdout
    summary = SUMMARY.match(lines[0])
    assert summary, lines[0]
    datacenters, servers, containers, services, gpus, held, users = map(int, summary.groups())
    assert took < 30, f"demo-data took {took:.1f} s"

    running = start_server(settings, tmp_path / "server.log")
    try:
        api = GraphQL(running.url)
        await api.sign_in("admin", ADMIN_PASSWORD)
        counts = await api.data(COUNTS)
        assert len(counts["datacenters"]) == datacenters
        assert 3 <= datacenters <= 4
        assert all(dc["location"] for dc in counts["datacenters"])
        assert counts["servers"]["totalCount"] == servers
        assert 45 <= servers <= 55
        assert counts["containers"]["totalCount"] == containers > servers
        assert counts["services"]["totalCount"] == services > servers
        assert counts["gpus"]["totalCount"] == gpus >= 40
        assert counts["held"]["totalCount"] == held
        assert 0 < held < gpus
        assert users == 6

        rows = await inventory(api)
        assert all(s["hostname"] and s["managementIp"] and s["os"] and s["tags"] for s in rows)
        assert any(s["publicIp"] for s in rows)
        assert {s["status"] for s in rows} >= {"ACTIVE", "MAINTENANCE", "DECOMMISSIONED"}
        assert {s["environment"]["name"] for s in rows} >= {"production", "staging"}
        boxes = [c for s in rows for c in s["containers"]]
        assert sum(bool(c["ports"]) for c in boxes) > len(boxes) // 2
        assert any(p["protocol"] == "UDP" for c in boxes for p in c["ports"])
        urls = [v["healthCheckUrl"] for c in boxes for v in c["services"] if v["healthCheckUrl"]]
        assert len(urls) > servers // 2
        assert all(url.startswith(("http://", "https://")) for url in urls)
        assert {v["kind"] for c in boxes for v in c["services"]} >= {"WEB", "DATABASE", "CACHE"}
        cards = [(s, g) for s in rows for g in s["gpus"]]
        assert len(cards) == gpus  # every GPU is in a server
        assert all("gpu" in s["tags"] for s, _ in cards)
        models = " ".join(g["model"] for _, g in cards)
        for model in ("A100", "H100", "L40S", "RTX 6000"):
            assert model in models
        holds = [g for _, g in cards if g["holder"]]
        assert len(holds) == held
        now = datetime.now(UTC)
        due = [datetime.fromisoformat(g["dueBack"]) for g in holds if g["dueBack"]]
        assert len([at for at in due if at < now]) == 1, "exactly one overdue"
        assert len([at for at in due if at > now]) >= 3
        assert all(datetime.fromisoformat(g["heldSince"]) < now for g in holds)
        assert len({g["holder"]["username"] for g in holds}) > 3
        history = await api.data("{ gpuHistory(first: 1000) { kind } }")
        kinds = [event["kind"] for event in history["gpuHistory"]]
        assert len(kinds) == held and set(kinds) == {"CLAIMED", "ASSIGNED"}

        # The demo users can sign in with the password the summary names.
        alice = GraphQL(running.url)
        await alice.sign_in("alice", DEMO_PASSWORD)
        mine = await alice.data('{ gpus(holder: "alice", first: 0) { totalCount } }')
        assert mine["gpus"]["totalCount"] >= 1
        await alice.close()

        # A second run refuses, and leaves everything as it was.
        again = demo_data(settings)
        assert again.returncode == 1
        assert "already has servers" in again.stderr
        assert again.stdout == ""
        assert await api.data(COUNTS) == counts
        await api.close()
    finally:
        stop_server(running)

    # The same data on another fresh database (a seeded random; ids and times aside).
    other = settings_for(fresh_urls[1])
    assert demo_data(other).returncode == 0
    app = create_app(other)
    async with app.router.lifespan_context(app), GraphQL(app) as api:
        second = await inventory(api)

    def stable(servers: list[dict]) -> list:
        return [
            {
                **server,
                "gpus": [
                    {**g, "heldSince": None, "dueBack": g["dueBack"] is not None}
                    for g in server["gpus"]
                ],
            }
            for server in servers
        ]

    assert stable(second) == stable(rows)
