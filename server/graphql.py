"""The `/graphql` endpoint: HTTP and websockets, auth, and our own offline GraphiQL page.

HTTP follows the GraphQL-over-HTTP spec (https://graphql.github.io/graphql-over-http/draft/),
checked by the `graphql-http` audit suite in tests/server/test_graphql_over_http.py:

- The answer's media type is the client's preferred of `application/graphql-response+json` and
  `application/json` (`Accept`); none, `*/*` or `application/*` mean `application/json`, and
  an `Accept` that allows neither gets 406.
- `application/json` keeps the legacy rule: every executed request is 200, its errors in the body.
  `application/graphql-response+json`: a request that never reached execution (parse,
  validation or variable errors: no `data`) is 400 without a `data` entry; once execution has
  started the answer is 200, also when a field error leaves `data` null.
- Requests that are not well-formed (bad JSON, `query`/`variables`/`extensions`/`operationName`
  of the wrong type, no query) are 400, a POST body that is not `application/json` 415, a
  mutation over GET is refused before it runs (405 with `Allow: POST`), subscriptions go over
  websockets only. These answers are GraphQL responses too: `errors` with
  `extensions.code` `BAD_REQUEST`.

File uploads follow the GraphQL multipart request spec (`operations`, `map` and file parts in a
`multipart/form-data` POST). A browser sends such a form cross-site without asking first, so a
multipart request must carry something a plain form cannot: an `Authorization` header, or
`X-Holdfast-Upload` (or `Apollo-Require-Preflight`) with any value; else 400. A body larger than
`max_upload_bytes` is refused with 413 and `PAYLOAD_TOO_LARGE`, by its Content-Length or, without
one, as soon as that much has been read.
"""

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema import BaseSchema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from domain.errors import DomainError
from graph.context import Context, Services
from server.origin import client_address

GRAPHIQL_PAGE = Path(__file__).parent / "static" / "graphiql.html"

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
MULTIPART = "multipart/form-data"
UPLOAD_HEADERS = ("X-Holdfast-Upload", "Apollo-Require-Preflight")
"""Headers a cross-site HTML form cannot send: one of them (or Authorization) allows multipart."""
# What each method may run: subscriptions need a websocket (no SSE or multipart transport here).
HTTP_OPERATIONS = {
    "GET": frozenset({OperationType.QUERY}),
    "POST": frozenset({OperationType.QUERY, OperationType.MUTATION}),
}


def accepted_media_type(accept: str | None) -> str | None:
    """Which of our two media types the `Accept` header prefers; None if it allows neither.

    Each type takes the q of the most specific range naming it (`type/subtype` over
    `application/*` over `*/*`); the higher q wins, then an explicit mention over a wildcard,
    then the earlier mention, and on a full tie the spec's legacy default `application/json`.
    """
    if not accept or not accept.strip():
        return JSON
    ranges = []
    for position, part in enumerate(accept.split(",")):
        mime, *params = (piece.strip() for piece in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((mime.lower(), q, position))
    choices = []
    for ours in (GRAPHQL_RESPONSE_JSON, JSON):
        specificity = {ours: 2, "application/*": 1, "*/*": 0}
        matching = [(specificity[m], q, pos) for m, q, pos in ranges if m in specificity]
        if matching:
            rank, q, position = max(matching, key=lambda match: match[0])
            if q > 0:
                choices.append((q, rank, -position, ours == JSON, ours))
    return max(choices)[-1] if choices else None


def is_request_error(result: ExecutionResult) -> bool:
    """True when the request never executed: no data and no error from a field (field errors
    always have a path; parse, validation and variable errors never do)."""
    return (
        result.data is None
        and bool(result.errors)
        and all(error.path is None for error in result.errors)
    )


class RequestError(HTTPException):
    """A request refused before execution, answered with this status (and headers)."""

    def __init__(
        self,
        status_code: int,
        reason: str,
        headers: dict[str, str] | None = None,
        code: str = "BAD_REQUEST",
    ):
        super().__init__(status_code, reason)
        self.headers = headers or {}
        self.code = code


def too_large(limit: int) -> RequestError:
    return RequestError(
        413,
        f"the request is larger than the upload limit of {limit} bytes (HOLDFAST_MAX_UPLOAD_BYTES)",
        code="PAYLOAD_TOO_LARGE",
    )


def capped(receive, limit: int):
    """`receive` that refuses a body once more than `limit` bytes of it arrived."""
    seen = 0

    async def receive_capped():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise too_large(limit)
        return message

    return receive_capped


def is_multipart(scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == MULTIPART.encode()
    return False


class LegacyWSHandler(BaseGraphQLWSHandler):
    """Legacy `graphql-ws` refuses a connection with close code 4403, as graphql-transport-ws
    does, after the protocol's own `connection_error` message (Strawberry closes with 1011)."""

    async def handle_start(self, message) -> None:
        with contextlib.suppress(DomainError):
            await self.context.viewer()  # fresh for the operation's synchronous resolvers
        await super().handle_start(message)

    async def handle_connection_init(self, message) -> None:
        payload = message.get("payload")
        self.context.connection_params = payload if isinstance(payload, dict) else {}
        try:
            await self.view.on_ws_connect(self.context)
        except ConnectionRejectionError as error:
            await self.send_message({"type": "connection_error", "payload": error.payload})
            await self.websocket.close(code=4403, reason="Forbidden")
            return
        await super().handle_connection_init(message)


JOIN_TIMEOUT_SECONDS = 10


class TransportWSHandler(BaseGraphQLTransportWSHandler):
    """graphql-transport-ws, with subscriptions served by graph.live: each event's frame is
    made once and sent to every subscriber of the same document and variables.

    A subscription is started before the next message of the client is read: once it has its
    place in the stream's feed, or has ended. A client that subscribes, pings and gets its
    pong therefore receives every change committed after that.
    """

    async def handle_subscribe(self, message) -> None:
        payload = message.get("payload")
        live = getattr(self.view, "live", None)
        if not isinstance(payload, dict) or live is None:
            await super().handle_subscribe(message)
            return
        if live.plan(payload.get("query"), payload.get("operationName")) is None:
            await super().handle_subscribe(message)
            return
        joined = asyncio.Event()
        self.context.joining = joined
        try:
            await super().handle_subscribe(message)
            operation = self.operations.get(message.get("id"))
            if operation is None or operation.task is None:
                return
            waiting = asyncio.ensure_future(joined.wait())
            await asyncio.wait(
                {waiting, operation.task},
                timeout=JOIN_TIMEOUT_SECONDS,
                return_when=asyncio.FIRST_COMPLETED,
            )
            waiting.cancel()
        finally:
            self.context.joining = None

    async def run_operation(self, operation: Operation) -> None:
        with contextlib.suppress(DomainError):
            await self.context.viewer()  # fresh for the operation's synchronous resolvers
        live = getattr(self.view, "live", None)
        plan = live.plan(operation.query, operation.operation_name) if live else None
        if plan is None:
            await super().run_operation(operation)
            return
        request_id = getattr(self.context, "request_id", None)
        try:
            executor, source = await live.start(plan, operation.variables, self.context)
            if executor is None:
                await operation.send_operation_message(
                    {
                        "id": operation.id,
                        "type": "error",
                        "payload": live.errors_payload(source, "execute", request_id),
                    }
                )
                return
            try:
                async for payload in source:
                    frame = await live.frame(plan, operation.variables, executor, payload)
                    await self._send_next(operation, frame)
            finally:
                close = getattr(source, "aclose", None)
                if close is not None:
                    await close()
        except (asyncio.CancelledError, WebSocketDisconnected):
            raise
        except Exception as error:
            coded = (
                error
                if isinstance(error, GraphQLError)
                else GraphQLError(str(error), original_error=error)
            )
            errors = live.errors_payload([coded], "execute", request_id)
            with contextlib.suppress(Exception):
                await self._send_next(
                    operation, orjson.dumps({"data": None, "errors": errors}).decode()
                )
        with contextlib.suppress(Exception):
            await operation.send_operation_message({"id": operation.id, "type": "complete"})

    async def _send_next(self, operation: Operation, payload: str) -> None:
        """A `next` message around an already encoded payload (shared by many subscribers)."""
        if operation.completed:
            return
        frame = '{"id":' + orjson.dumps(operation.id).decode() + ',"type":"next","payload":'
        try:
            await self.websocket.ws.send_text(frame + payload + "}")
        except WebSocketDisconnect as disconnected:
            raise WebSocketDisconnected from disconnected


class GraphQLApp(GraphQL):
    graphql_ws_handler_class = LegacyWSHandler
    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(
        self,
        schema: BaseSchema,
        services: Services,
        allowed_origins=(),
        live=None,
        max_upload_bytes: int = 20 * 1024**2,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            allow_queries_via_get=True,
            keep_alive=True,
            keep_alive_interval=15,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
            connection_init_wait_timeout=timedelta(seconds=10),
            multipart_uploads_enabled=True,
            max_subscriptions_per_connection=100,
            allowed_origins=allowed_origins,
        )
        self.services = services
        self.live = live
        self.max_upload_bytes = max_upload_bytes
        self._graphiql_page = GRAPHIQL_PAGE.read_text()

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket):
        is_http = isinstance(request, Request)
        context = Context(
            services=self.services,
            request=request,
            request_id=request.scope.get("state", {}).get("request_id", "-"),
            client_address=client_address(request),
            authorization=request.headers.get("authorization") if is_http else None,
            long_lived=not is_http,
        )
        if is_http:
            with contextlib.suppress(DomainError):  # a resolver that asks gets the error
                await context.viewer()  # who is calling, known before any resolver asks
        return context

    async def on_ws_connect(self, context: Context) -> dict[str, Any] | None:
        """Authenticate a websocket from its connection_init payload (operations re-check)."""
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        context.authorization = params.get("Authorization") or params.get("authorization")
        try:
            viewer = await context.require_viewer()
        except DomainError as error:
            raise ConnectionRejectionError({"message": error.message, "code": error.code}) from None
        return {"username": viewer.username}

    def encode_json(self, data: object) -> str:
        """orjson: every subscriber's every event is encoded, so this is a hot path."""
        return orjson.dumps(data).decode()

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(self._graphiql_page)

    # GraphQL over HTTP. Strawberry answers every executed request 200 application/json and
    # every refusal in plain text; the overrides below negotiate the media type, pick the status
    # and make refusals GraphQL responses. The chosen media type and a request-error status
    # travel in `request.state` from the hooks that know them to `__call__`.

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if is_multipart(scope):
            receive = capped(receive, self.max_upload_bytes)
        request = Request(scope, receive)
        media_type = accepted_media_type(request.headers.get("accept"))
        request.state.graphql_media_type = media_type or JSON
        request.state.graphql_status = None
        try:
            response = await self.run(request)
        except HTTPException as error:
            response = self.refusal(error, request.state.graphql_media_type)
        else:
            if response.media_type == JSON:
                response.headers["content-type"] = request.state.graphql_media_type
                response.status_code = request.state.graphql_status or response.status_code
        await response(scope, receive, send)

    def refusal(self, error: HTTPException, media_type: str) -> Response:
        """A request refused at the HTTP level, as a GraphQL response with a code."""
        headers = dict(getattr(error, "headers", {}))
        if error.status_code == 405:
            headers.setdefault("Allow", "GET, POST")
        code = getattr(error, "code", "BAD_REQUEST")
        body = {"errors": [{"message": error.reason, "extensions": {"code": code}}]}
        return Response(
            self.encode_json(body),
            status_code=error.status_code,
            headers=headers,
            media_type=media_type,
        )

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """Refuse an `Accept` we cannot answer (after GraphiQL had its chance), a POST body
        that is neither UTF-8 `application/json` nor an upload we may take, and a non-string
        `operationName`."""
        if accepted_media_type(request.headers.get("accept")) is None:
            raise RequestError(406, f"Accept must allow {GRAPHQL_RESPONSE_JSON} or {JSON}")
        if request.method == "POST":
            mime, params = parse_content_type(request.content_type or "")
            if mime == MULTIPART:
                self.check_upload(request)
            elif mime != JSON or params.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
                raise RequestError(415, f"POST bodies must be {JSON} (UTF-8) or {MULTIPART}")
        data = await super().parse_http_body(request)
        if isinstance(data, GraphQLRequestData) and not isinstance(data.operation_name, str | None):
            raise RequestError(400, "The GraphQL operation's `operationName` must be a string")
        return data

    def check_upload(self, request: AsyncHTTPRequestAdapter) -> None:
        headers = request.headers
        if not headers.get("authorization") and not any(
            headers.get(name) for name in UPLOAD_HEADERS
        ):
            raise RequestError(
                400,
                f"a {MULTIPART} request needs the header {UPLOAD_HEADERS[0]} (any value) or"
                " Authorization: browsers send plain forms cross-site without asking",
            )
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_upload_bytes:
            raise too_large(self.max_upload_bytes)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Strawberry's, with our operation types per method and our refusal statuses."""
        method = request_adapter.method
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=HTTP_OPERATIONS[method],
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                raise RequestError(400, "subscriptions are served over websockets") from error
            reason = error.as_http_error_reason(method)
            raise RequestError(405, reason, {"Allow": "POST"}) from error
        except CannotGetOperationTypeError as error:
            raise RequestError(400, error.as_http_error_reason()) from error
        except MissingQueryError as error:
            raise RequestError(400, "No GraphQL query found in the request") from error

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """Under graphql-response+json a request error has no `data` and a 4xx/5xx status."""
        response = await super().process_result(request, result)
        if request.state.graphql_media_type == GRAPHQL_RESPONSE_JSON and is_request_error(result):
            del response["data"]
            internal = any(
                (error.extensions or {}).get("code") == "INTERNAL_SERVER_ERROR"
                for error in result.errors
            )
            request.state.graphql_status = 500 if internal else 400
        return response
