"""/healthz and /readyz as plain JSON; readiness follows the database and Redis."""

import httpx

from tests.conftest import start_server, stop_server


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
