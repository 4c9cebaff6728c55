"""Liveness and readiness probes as plain JSON."""

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

logger = logging.getLogger("holdfast.health")

PROBE_TIMEOUT_SECONDS = 3


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _probe(name: str, check) -> str:
    try:
        await asyncio.wait_for(check(), PROBE_TIMEOUT_SECONDS)
    except Exception as error:
        logger.warning("readiness: %s unavailable (%s)", name, type(error).__name__)
        return "unavailable"
    return "ok"


async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    checks = {"database": await _probe("database", state.db.ping)}
    checks["redis"] = (
        await _probe("redis", state.bus.ping) if state.bus.kind == "redis" else "not configured"
    )
    if state.bus.kind == "postgres":
        checks["bus"] = await _probe("bus", state.bus.ping)
    ready = all(value != "unavailable" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", **checks}, status_code=200 if ready else 503
    )
