"""Tokens on both transports, against a real uvicorn process: good ones pass; tampered, expired
and revoked ones are refused on HTTP (UNAUTHENTICATED) and on the websocket (close 4403)."""

import asyncio
import json
import time

import jwt
import pytest
import websockets
from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from db.engine import Database
from db.server_state import get_secret
from tests.conftest import ADMIN_PASSWORD, start_server, stop_server
from tests.support.graphql import Sync

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256"
LOGIN = """mutation($u: String!, $p: String!) { login(username: $u, password: $p) {
    accessToken refreshToken user { id } } }"""


@pytest.fixture
def jwt_server(settings, tmp_path):
    running = start_server(settings.replace(jwt_secret=JWT_SECRET), tmp_path / "server.log")
    yield running
    stop_server(running)


def post(server, query, variables=None, token=None):
    return Sync(server.url).post(query, variables, token)


def login(server) -> dict:
    return post(server, LOGIN, {"u": "admin", "p": ADMIN_PASSWORD})["data"]["login"]


async def ws_connect(server, protocol: str, payload: dict | None):
    """Open a websocket, send connection_init; return ('ack', payload) or ('closed', code)."""
    async with websockets.connect(server.ws_url, subprotocols=[protocol]) as socket:
        message = {"type": "connection_init"}
        if payload is not None:
            message["payload"] = payload
        await socket.send(json.dumps(message))
        try:
            while True:
                reply = json.loads(await socket.recv())
                if reply["type"] == "connection_ack":
                    return "ack", reply.get("payload")
        except websockets.ConnectionClosed as closed:
            return "closed", closed.rcvd.code if closed.rcvd else None


def bad_tokens(access_token: str, user_id: str) -> dict[str, str]:
    header, claims, signature = access_token.split(".")
    now = int(time.time())
    return {
        "tampered": f"{header}.{claims}.{signature[:-4]}AAAA",
        "expired": jwt.encode(
            {"iss": "holdfast", "sub": user_id, "ver": 0, "iat": now - 120, "exp": now - 60},
            JWT_SECRET,
            algorithm="HS256",
        ),
        "wrong key": jwt.encode(
            {"iss": "holdfast", "sub": user_id, "ver": 0, "iat": now, "exp": now + 60},
            "another-secret-entirely-unrelated-to-ours",
            algorithm="HS256",
        ),
        "unsigned": jwt.encode(
            {"iss": "holdfast", "sub": user_id, "ver": 0, "iat": now, "exp": now + 60},
            key=None,
            algorithm="none",
        ),
        "garbage": "not-a-token",
        "unknown api token": "hf_" + "x" * 40,
    }


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_good_tokens_are_accepted_on_the_websocket(jwt_server, protocol):
    session = login(jwt_server)
    state, payload = await ws_connect(
        jwt_server, protocol, {"Authorization": f"Bearer {session['accessToken']}"}
    )
    assert (state, payload) == ("ack", {"username": "admin"})
    api_token = post(
        jwt_server,
        'mutation { createApiToken(name: "ci") { token } }',
        token=session["accessToken"],
    )["data"]["createApiToken"]["token"]
    state, _ = await ws_connect(jwt_server, protocol, {"Authorization": f"Bearer {api_token}"})
    assert state == "ack"


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_bad_tokens_are_refused_on_http_and_websocket(jwt_server, protocol):
    session = login(jwt_server)
    for name, token in bad_tokens(session["accessToken"], session["user"]["id"]).items():
        body = post(jwt_server, "{ me { id } }", token=token)
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", name
        assert await ws_connect(jwt_server, protocol, {"Authorization": f"Bearer {token}"}) == (
            "closed",
            4403,
        ), name
    assert await ws_connect(jwt_server, protocol, None) == ("closed", 4403)
    assert await ws_connect(jwt_server, protocol, {}) == ("closed", 4403)
    assert await ws_connect(jwt_server, protocol, {"Authorization": 123}) == ("closed", 4403)


async def test_revoked_tokens_are_refused_on_http_and_websocket(jwt_server):
    admin = login(jwt_server)["accessToken"]
    created = post(
        jwt_server,
        """mutation { createUser(input: {username: "mira",
        email: "mira@example.com", password: "user-password-1"}) { id } }""",
        token=admin,
    )
    user_id = created["data"]["createUser"]["id"]
    user = post(jwt_server, LOGIN, {"u": "mira", "p": "user-password-1"})["data"]["login"]
    api_token = post(
        jwt_server, 'mutation { createApiToken(name: "ci") { token } }', token=user["accessToken"]
    )["data"]["createApiToken"]["token"]
    for token in [user["accessToken"], api_token]:
        assert (
            await ws_connect(
                jwt_server, "graphql-transport-ws", {"Authorization": f"Bearer {token}"}
            )
        )[0] == "ack"
    post(
        jwt_server,
        """mutation($id: ID!) { updateUser(id: $id, input: {active: false}) { id } }""",
        {"id": user_id},
        token=admin,
    )
    for token in [user["accessToken"], api_token]:
        body = post(jwt_server, "{ me { id } }", token=token)
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert await ws_connect(
            jwt_server, "graphql-transport-ws", {"Authorization": f"Bearer {token}"}
        ) == ("closed", 4403)


async def test_queries_run_over_the_websocket_with_a_real_client(server):
    session = post(server, LOGIN, {"u": "admin", "p": ADMIN_PASSWORD})["data"]["login"]
    init = {"Authorization": f"Bearer {session['accessToken']}"}
    transport = WebsocketsTransport(
        url=server.ws_url,
        init_payload=init,
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    async with Client(transport=transport) as client:
        result = await client.execute(gql("{ me { username role } }"))
    assert result == {"me": {"username": "admin", "role": "ADMIN"}}
    # The legacy protocol runs subscriptions only: a query there is the client's error.
    legacy = WebsocketsTransport(
        url=server.ws_url, init_payload=init, subprotocols=[WebsocketsTransport.APOLLO_SUBPROTOCOL]
    )
    async with Client(transport=legacy) as client:
        with pytest.raises(TransportQueryError) as refused:
            await client.execute(gql("{ me { username } }"))
    assert refused.value.errors[0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_the_server_keeps_the_generated_jwt_key_across_restarts(settings, tmp_path):
    first = start_server(settings, tmp_path / "first.log")
    try:
        token = login(first)["accessToken"]
    finally:
        stop_server(first)
    second = start_server(settings, tmp_path / "second.log")
    try:
        assert post(second, "{ me { username } }", token=token)["data"]["me"]["username"] == "admin"
    finally:
        stop_server(second)
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            generated = await get_secret(session, "jwt_secret")
    finally:
        await db.dispose()
    assert generated and len(generated) >= 32
    assert generated not in first.output() + second.output()


async def test_an_open_websocket_loses_the_rights_of_a_deactivated_user(server):
    admin = login(server)["accessToken"]
    post(
        server,
        """mutation { createUser(input: {username: "boss", email: "b@example.com",
        password: "user-password-1", role: ADMIN}) { id } }""",
        token=admin,
    )
    boss = post(server, LOGIN, {"u": "boss", "p": "user-password-1"})["data"]["login"]
    transport = WebsocketsTransport(
        url=server.ws_url,
        init_payload={"Authorization": f"Bearer {boss['accessToken']}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    async with Client(transport=transport) as client:
        assert (await client.execute(gql("{ me { username } }")))["me"]["username"] == "boss"
        post(
            server,
            """mutation($id: ID!) { updateUser(id: $id, input: {active: false}) {
            id } }""",
            {"id": boss["user"]["id"]},
            token=admin,
        )
        await asyncio.sleep(1.1)
        with pytest.raises(TransportQueryError) as refused:
            await client.execute(
                gql("""mutation { createUser(input: {username: "sneaky",
                email: "s@example.com", password: "user-password-1", role: ADMIN}) { id } }""")
            )
    assert refused.value.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
