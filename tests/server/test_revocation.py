"""Every replica keeps who a credential belongs to, and forgets the moment it stops holding:
a deactivated user, a changed password or a revoked API token is refused on the other replica at
once (HTTP and websocket), and with the bus down the replicas do not trust their caches."""

import asyncio

import pytest
import websockets

from tests.conftest import ADMIN_PASSWORD, USER_PASSWORD, start_server, stop_server
from tests.support.graphql import GraphQL

ME = "{ me { username } }"


@pytest.fixture
def two_replicas(settings, shared_redis_url, tmp_path):
    shared = settings.replace(redis_url=shared_redis_url)
    replicas = [start_server(shared, tmp_path / f"{name}.log") for name in "ab"]
    yield replicas
    for replica in replicas:
        stop_server(replica)


async def user_id(admin: GraphQL, username: str) -> str:
    users = (await admin.data("{ users { edges { node { id username } } } }"))["users"]
    return next(e["node"]["id"] for e in users["edges"] if e["node"]["username"] == username)


async def signed_in(client: GraphQL, token: str) -> bool:
    body = await client.post(ME, token=token)
    if "errors" in body:
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", body
        return False
    return True


async def websocket_accepted(ws_url: str, token: str) -> bool:
    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as socket:
        await socket.send(
            '{"type": "connection_init", "payload": {"Authorization": "Bearer ' + token + '"}}'
        )
        try:
            await asyncio.wait_for(socket.recv(), 5)
            return True
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd.code == 4403
            return False


async def test_revocation_on_one_replica_holds_on_the_other_at_once(two_replicas):
    a, b = two_replicas
    async with GraphQL(a.url) as on_a, GraphQL(b.url) as on_b:
        await on_a.sign_in("admin", ADMIN_PASSWORD)
        for name in ["mira", "noor", "ravi"]:
            await on_a.create_user(name)
        mira = (await on_b.login("mira", USER_PASSWORD))["accessToken"]
        noor = (await on_b.login("noor", USER_PASSWORD))["accessToken"]
        ravi = (await on_b.login("ravi", USER_PASSWORD))["accessToken"]
        ravi_api = (
            await on_b.data(
                'mutation { createApiToken(name: "ci") { token apiToken { id } } }', token=ravi
            )
        )["createApiToken"]
        for token in (mira, noor, ravi_api["token"]):
            assert await signed_in(on_b, token)  # now known to replica b
            assert await signed_in(on_b, token)

        await on_a.data(
            "mutation($id: ID!) { updateUser(id: $id, input: {active: false}) { id } }",
            {"id": await user_id(on_a, "mira")},
        )
        assert not await signed_in(on_b, mira)
        assert not await websocket_accepted(b.ws_url, mira)

        await on_a.data(
            'mutation($id: ID!) { resetUserPassword(id: $id, newPassword: "other-password-9") '
            "{ id } }",
            {"id": await user_id(on_a, "noor")},
        )
        assert not await signed_in(on_b, noor)

        await on_a.data(
            "mutation($id: ID!) { revokeApiToken(id: $id) }",
            {"id": ravi_api["apiToken"]["id"]},
            token=(await on_a.login("ravi", USER_PASSWORD))["accessToken"],
        )
        assert not await signed_in(on_b, ravi_api["token"])
        assert await signed_in(on_b, ravi)  # the access token of the same user still works


async def revocations_are_in_force_when_they_answer(on_a: GraphQL, on_b: GraphQL) -> None:
    """Revoke many API tokens on replica a (signed in as admin), each checked on replica b
    straight after it answers, with no pause: a race the bus alone loses now and then."""
    created = [
        (await on_a.data('mutation { createApiToken(name: "t") { token apiToken { id } } }'))[
            "createApiToken"
        ]
        for _ in range(15)
    ]
    for token in created:
        assert await signed_in(on_b, token["token"])  # cached on replica b
    for token in created:
        await on_a.data(
            "mutation($id: ID!) { revokeApiToken(id: $id) }", {"id": token["apiToken"]["id"]}
        )
        assert not await signed_in(on_b, token["token"])


async def test_every_revocation_is_in_force_on_the_other_replica_when_it_answers(two_replicas):
    """A revocation answers only once every replica has confirmed it dropped the credential."""
    a, b = two_replicas
    async with GraphQL(a.url) as on_a, GraphQL(b.url) as on_b:
        await on_a.sign_in("admin", ADMIN_PASSWORD)
        await revocations_are_in_force_when_they_answer(on_a, on_b)


async def test_with_the_bus_down_replicas_read_the_database(settings, private_redis, tmp_path):
    redis_process, redis_url = private_redis
    shared = settings.replace(redis_url=redis_url)
    a, b = (start_server(shared, tmp_path / f"{name}.log") for name in "ab")
    try:
        async with GraphQL(a.url) as on_a, GraphQL(b.url) as on_b:
            await on_a.sign_in("admin", ADMIN_PASSWORD)
            await on_a.create_user("mira")
            mira = (await on_b.login("mira", USER_PASSWORD))["accessToken"]
            assert await signed_in(on_b, mira)
            redis_process.kill()
            redis_process.wait()
            await asyncio.sleep(1)  # the replicas notice the bus is gone
            await on_a.data(
                "mutation($id: ID!) { updateUser(id: $id, input: {active: false}) { id } }",
                {"id": await user_id(on_a, "mira")},
            )
            assert not await signed_in(on_b, mira)
    finally:
        stop_server(a)
        stop_server(b)
