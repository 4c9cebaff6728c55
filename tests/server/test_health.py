"""/healthz and /readyz as plain JSON; readiness follows the database and Redis."""

import shutil
import subprocess
import time

import httpx
import pytest
import redis

from tests.conftest import free_port, start_server, stop_server


async def test_healthz_and_readyz(api, settings):
    health = await api.http.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = await api.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "database": "ok",
        "redis": "ok" if settings.redis_url else "not configured",
    }


@pytest.fixture
def private_redis(tmp_path):
    """A Redis server of this test's own, so the test may kill it."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed for this test (Debian package redis-server)"
    port = free_port()
    process = subprocess.Popen(
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
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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


def test_readyz_reports_redis_going_away(settings, private_redis, tmp_path):
    process, url = private_redis
    server = start_server(settings.replace(redis_url=url), tmp_path / "server.log")
    try:
        ready = httpx.get(f"{server.url}/readyz", timeout=10)
        assert (ready.status_code, ready.json()["redis"]) == (200, "ok")
        process.kill()
        process.wait()
        ready = httpx.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable", "database": "ok", "redis": "unavailable"}
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        stop_server(server)


async def test_cors_allows_only_the_configured_origins(settings):
    from server.app import create_app

    application = create_app(settings.replace(cors_origins=("https://board.example",)))
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            allowed = await http.options(
                "/graphql", headers={"Origin": "https://board.example", **preflight}
            )
            refused = await http.options(
                "/graphql", headers={"Origin": "https://evil.example", **preflight}
            )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://board.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
