"""The one GraphQL client of the tests: over HTTP to the app in this process or to a server
process, over websockets (graphql-transport-ws) to a server process; async, and `Sync` for
tests that are not."""

from __future__ import annotations

import asyncio
import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import websockets

from tests.support.accounts import USER_PASSWORD

LOGIN = """mutation($u: String!, $p: String!) { login(username: $u, password: $p) {
    accessToken refreshToken accessTokenExpiresAt user { id username role } } }"""
CREATE_USER = """mutation($input: CreateUserInput!) { createUser(input: $input) {
    id username role active } }"""
LOCK_EVENTS = """subscription($project: String!, $prefix: String, $since: Long) {
    lockEvents(project: $project, pathPrefix: $prefix, since: $since) {
        seq kind message actor { username } lock { id path owner { username } fencingToken
        comment } } }"""


class GraphQL:
    """`target` is a Starlette app (called in this process) or a server's base URL."""

    def __init__(
        self,
        target: Any,
        token: str | None = None,
        *,
        client: tuple[str, int] = ("127.0.0.1", 50000),
        timeout: float = 30,
    ) -> None:
        self.token = token
        if isinstance(target, str):
            self.url = target
            self.http = httpx.AsyncClient(base_url=target, timeout=timeout)
        else:
            self.url = None
            transport = httpx.ASGITransport(app=target, client=client)
            self.http = httpx.AsyncClient(
                transport=transport, base_url="http://holdfast.test", timeout=timeout
            )

    async def __aenter__(self) -> GraphQL:
        return self

    async def __aexit__(self, *_exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    def _headers(self, token: str | None, headers: dict | None) -> dict:
        bearer = token if token is not None else self.token
        return {**({"Authorization": f"Bearer {bearer}"} if bearer else {}), **(headers or {})}

    async def post(
        self,
        query: str,
        variables: dict | None = None,
        token: str | None = None,
        headers: dict | None = None,
    ) -> dict:
        """The whole response body."""
        response = await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers=self._headers(token, headers),
        )
        return response.json()

    async def upload(
        self,
        query: str,
        variables: dict,
        files: dict[str, tuple[str, bytes]],
        token: str | None = None,
        headers: dict | None = None,
        preflight: bool = True,
    ) -> httpx.Response:
        """A multipart request (the GraphQL multipart request spec): `files` maps a variable
        path such as `variables.file` to (filename, bytes); that variable is sent as null.
        `preflight` adds the header that lets a multipart request in."""
        parts = {str(index): path for index, path in enumerate(files)}
        response = await self.http.post(
            "/graphql",
            data={
                "operations": json.dumps({"query": query, "variables": variables}),
                "map": json.dumps({index: [path] for index, path in parts.items()}),
            },
            files={index: files[path] for index, path in parts.items()},
            headers={
                **({"X-Holdfast-Upload": "1"} if preflight else {}),
                **self._headers(token, headers),
            },
        )
        return response

    async def data(self, query: str, variables: dict | None = None, token: str | None = None):
        """The `data` of a response that must have no errors."""
        body = await self.post(query, variables, token)
        assert "errors" not in body, body
        return body["data"]

    async def error(self, query: str, variables: dict | None = None, token: str | None = None):
        """The first error of a response that must fail: (its code, the error)."""
        body = await self.post(query, variables, token)
        assert body.get("errors"), body
        error = body["errors"][0]
        return error["extensions"]["code"], error

    async def login(self, username: str, password: str) -> dict:
        return (await self.data(LOGIN, {"u": username, "p": password}))["login"]

    async def sign_in(self, username: str, password: str) -> str:
        """Log in and send this user's access token from now on; returns it."""
        self.token = (await self.login(username, password))["accessToken"]
        return self.token

    async def create_user(
        self, username: str, role: str = "USER", token: str | None = None, **extra
    ) -> dict:
        user = {
            "username": username,
            "email": f"{username}@example.com",
            "password": USER_PASSWORD,
            "role": role,
            **extra,
        }
        return (await self.data(CREATE_USER, {"input": user}, token=token))["createUser"]

    def subscribe(
        self, variables: dict, query: str = LOCK_EVENTS, token: str | None = None, **connect
    ) -> Subscription:
        """A subscription over graphql-transport-ws (a server process only)."""
        assert self.url, "websockets need a server process"
        ws_url = self.url.replace("http://", "ws://") + "/graphql"
        return Subscription(ws_url, token or self.token, variables, query, **connect)


class Sync:
    """The same client for code that does not await: each call runs on an event loop of its
    own (in a thread of its own when the caller's thread already runs one)."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url, self.token = url, token

    def sign_in(self, username: str, password: str) -> str:
        self.token = self.login(username, password)["accessToken"]
        return self.token

    def __getattr__(self, name: str):
        method = getattr(GraphQL, name)

        def call(*args, **kwargs):
            async def run():
                async with GraphQL(self.url, self.token) as client:
                    return await method(client, *args, **kwargs)

            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(run())
            with ThreadPoolExecutor(1) as thread:
                return thread.submit(asyncio.run, run()).result()

        return call


class Subscription:
    """A graphql-transport-ws subscription whose results pile up in `events`.

    `async with` returns once the server has the subscription (a ping sent after it came
    back); `paused` holds the connection and reads nothing more until `resumed` is set.
    """

    def __init__(
        self,
        ws_url: str,
        token: str | None,
        variables: dict,
        query: str = LOCK_EVENTS,
        **connect,
    ) -> None:
        self.ws_url, self.token, self.query, self.variables = ws_url, token, query, variables
        self.connect = connect
        self.events: list[dict] = []
        self.errors: list = []
        self.closed: int | None = None
        self.completed = asyncio.Event()
        self.finished = asyncio.Event()
        self.paused = False
        self.resumed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> Subscription:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def __aexit__(self, *_exc) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task

    async def _run(self) -> None:
        try:
            async with websockets.connect(
                self.ws_url, subprotocols=["graphql-transport-ws"], **self.connect
            ) as socket_:
                self.socket = socket_
                init = {"type": "connection_init", "payload": {}}
                if self.token:
                    init["payload"] = {"Authorization": f"Bearer {self.token}"}
                await socket_.send(json.dumps(init))
                assert json.loads(await socket_.recv())["type"] == "connection_ack"
                subscribe = {"query": self.query, "variables": self.variables}
                await socket_.send(
                    json.dumps({"id": "1", "type": "subscribe", "payload": subscribe})
                )
                await socket_.send(json.dumps({"type": "ping"}))
                async for raw in socket_:
                    if self.paused:
                        await self.resumed.wait()
                    self._received(json.loads(raw))
        except websockets.ConnectionClosed as closed:
            self.closed = closed.rcvd.code if closed.rcvd else 1006
        finally:
            self._ready.set()
            self.completed.set()
            self.finished.set()

    def _received(self, message: dict) -> None:
        if message["type"] == "pong":
            self._ready.set()
        elif message["type"] == "next":
            payload = message["payload"]
            if payload.get("errors"):
                self.errors.extend(payload["errors"])
            else:
                [value] = payload["data"].values()
                self.events.append(value)
        elif message["type"] == "error":
            self.errors.extend(message["payload"])
            self.completed.set()
        elif message["type"] == "complete":
            self.completed.set()

    async def wait_for(self, count: int, timeout: float = 15) -> list[dict]:
        async def enough() -> None:
            while len(self.events) < count:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(enough(), timeout)
        return self.events

    @property
    def seqs(self) -> list[int]:
        return [event["seq"] for event in self.events]
