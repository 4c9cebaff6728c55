"""GraphQL over HTTP (httpx) and subscriptions over websockets (`graphql-transport-ws`).

Errors the server answers become `ApiError(code, message)`; a server that cannot be reached, or
a connection that drops, is `Unreachable`.
"""

import json
from collections.abc import AsyncIterator, Callable

import httpx

from client.errors import ApiError, CliError, Unreachable


def base_url(server: str) -> str:
    """`http://host:8000/graphql/` → `http://host:8000`."""
    url = server.strip().rstrip("/")
    if url.endswith("/graphql"):
        url = url[: -len("/graphql")]
    if not url.startswith(("http://", "https://")):
        raise CliError(f"the server URL must start with http:// or https://: {server}")
    return url


def _reason(error: Exception) -> str:
    return str(error) or type(error).__name__


def _raise_errors(errors: list) -> None:
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    extensions = first.get("extensions") or {}
    raise ApiError(
        extensions.get("code", "INTERNAL_SERVER_ERROR"),
        first.get("message", "the server answered with an error"),
        extensions,
    )


class Api:
    """A GraphQL client for one server, authenticated with one bearer token (or none)."""

    def __init__(self, server: str, token: str | None = None) -> None:
        self.server = base_url(server)
        self.token = token
        self.http = httpx.Client(timeout=httpx.Timeout(30, connect=10))

    @property
    def endpoint(self) -> str:
        return f"{self.server}/graphql"

    def call(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        """The `data` of the answer; raises ApiError on the first error."""
        bearer = token or self.token
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        try:
            response = self.http.post(
                self.endpoint, json={"query": query, "variables": variables or {}}, headers=headers
            )
        except httpx.HTTPError as error:
            raise Unreachable(f"cannot reach {self.endpoint}: {_reason(error)}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or ("data" not in body and "errors" not in body):
            raise CliError(
                f"unexpected answer from {self.endpoint}: HTTP {response.status_code} "
                "(is this a Holdfast server?)"
            )
        if body.get("errors"):
            _raise_errors(body["errors"])
        return body["data"]

    async def subscribe(
        self, query: str, variables: dict, on_ack: Callable[[], None] | None = None
    ) -> AsyncIterator[dict]:
        """Yield the `data` of each event until the server completes the subscription;
        `on_ack` is called once the server has accepted the connection."""
        import websockets

        url = "ws" + self.endpoint[len("http") :]
        payload = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with websockets.connect(
                url, subprotocols=["graphql-transport-ws"], open_timeout=10, max_size=None
            ) as socket:
                await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
                async for raw in socket:
                    message = json.loads(raw)
                    kind = message.get("type")
                    if kind == "connection_ack":
                        subscribe = {"query": query, "variables": variables}
                        await socket.send(
                            json.dumps({"id": "1", "type": "subscribe", "payload": subscribe})
                        )
                        if on_ack is not None:
                            on_ack()
                    elif kind == "ping":
                        await socket.send(json.dumps({"type": "pong"}))
                    elif kind == "next":
                        body = message.get("payload") or {}
                        if body.get("errors"):
                            _raise_errors(body["errors"])
                        yield body["data"]
                    elif kind == "error":
                        _raise_errors(message.get("payload") or [])
                    elif kind == "complete":
                        return
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            if code == 4403:
                raise ApiError("UNAUTHENTICATED", "the server refused the credentials") from None
            if code is not None and 4400 <= code < 4500:  # the protocol's "do not retry"
                reason = closed.rcvd.reason or "refused"
                raise ApiError(
                    "BAD_REQUEST", f"the server closed the subscription: {reason}"
                ) from None
            raise Unreachable(f"connection to {url} lost ({code or 'no close frame'})") from None
        except (OSError, TimeoutError, websockets.InvalidHandshake) as error:
            raise Unreachable(f"cannot reach {url}: {_reason(error)}") from None
