"""The `/graphql` endpoint: HTTP and websockets, auth, and our own offline GraphiQL page."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from domain.errors import DomainError
from graph.context import Context, Services

GRAPHIQL_PAGE = Path(__file__).parent / "static" / "graphiql.html"


class LegacyWSHandler(BaseGraphQLWSHandler):
    """Legacy `graphql-ws` refuses a connection with close code 4403, as graphql-transport-ws
    does, after the protocol's own `connection_error` message (Strawberry closes with 1011)."""

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


class GraphQLApp(GraphQL):
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, schema: BaseSchema, services: Services, allowed_origins=()) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            allow_queries_via_get=True,
            keep_alive=True,
            keep_alive_interval=15,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
            connection_init_wait_timeout=timedelta(seconds=10),
            multipart_uploads_enabled=False,
            max_subscriptions_per_connection=100,
            allowed_origins=allowed_origins,
        )
        self.services = services
        self._graphiql_page = GRAPHIQL_PAGE.read_text()

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket):
        is_http = isinstance(request, Request)
        return Context(
            services=self.services,
            request=request,
            request_id=request.scope.get("state", {}).get("request_id", "-"),
            client_address=request.client.host if request.client else None,
            authorization=request.headers.get("authorization") if is_http else None,
            long_lived=not is_http,
        )

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
