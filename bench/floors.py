"""Floors: plain Starlette apps doing what Holdfast does with nothing in between, run by the
benchmarks under uvicorn in the same run.

- `GET /locks`: the 100-lock list as raw asyncpg + orjson, the same JSON the GraphQL query
  returns, from the same tables (BENCH_DATABASE_URL);
- `/ws` + `POST /emit`: a websocket broadcast of the same bytes to every connected client.
"""

import asyncio
import os

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

clients: set[WebSocket] = set()
pool: asyncpg.Pool | None = None

LOCKS = """
SELECT l.id, l.path, l.branch, l.comment, l.acquired_at, l.fencing_token, u.username,
       count(*) OVER () AS total
FROM locks l JOIN projects p ON p.id = l.project_id JOIN users u ON u.id = l.owner_id
WHERE p.slug = $1 AND (l.expires_at IS NULL OR l.expires_at > now())
ORDER BY l.id LIMIT $2
"""


async def database() -> asyncpg.Pool:
    global pool
    if pool is None:
        pool = await asyncpg.create_pool(os.environ["BENCH_DATABASE_URL"], min_size=4, max_size=16)
    return pool


async def locks(request: Request) -> Response:
    rows = await (await database()).fetch(
        LOCKS, request.query_params.get("project", "default"), int(request.query_params["first"])
    )
    edges = [
        {
            "node": {
                "id": str(row["id"]),
                "path": row["path"],
                "branch": row["branch"],
                "comment": row["comment"],
                "acquiredAt": row["acquired_at"].isoformat(),
                "fencingToken": row["fencing_token"],
                "owner": {"username": row["username"]},
            }
        }
        for row in rows
    ]
    total = rows[0]["total"] if rows else 0
    body = {"data": {"locks": {"totalCount": total, "edges": edges}}}
    return Response(orjson.dumps(body), media_type="application/json")


async def connect(websocket: WebSocket) -> None:
    await websocket.accept()
    clients.add(websocket)
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        clients.discard(websocket)


async def emit(request: Request) -> JSONResponse:
    payload = (await request.body()).decode()
    await asyncio.gather(*(client.send_text(payload) for client in list(clients)))
    return JSONResponse({"sent": len(clients)})


async def count(request: Request) -> JSONResponse:
    return JSONResponse({"clients": len(clients)})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/locks", locks),
        WebSocketRoute("/ws", connect),
        Route("/emit", emit, methods=["POST"]),
        Route("/clients", count),
    ]
)
