"""The floor for live delivery: a plain Starlette websocket server that sends the same bytes to
every connected client, with no GraphQL in between. Run by bench/locks.py under uvicorn.

POST /emit with a JSON body: the body is sent as-is to every websocket at /ws.
"""

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

clients: set[WebSocket] = set()


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


app = Starlette(
    routes=[
        WebSocketRoute("/ws", connect),
        Route("/emit", emit, methods=["POST"]),
        Route("/clients", count),
    ]
)
