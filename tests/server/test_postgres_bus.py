"""Replicas on PostgreSQL alone (HOLDFAST_BUS=postgres, no Redis): live events and revocations
travel by LISTEN/NOTIFY."""

import pytest

from tests.conftest import (
    ADMIN_PASSWORD,
    TEST_DATABASE_URL,
    USER_PASSWORD,
    start_server,
    stop_server,
)
from tests.server.test_revocation import (
    revocations_are_in_force_when_they_answer,
    signed_in,
    user_id,
)
from tests.support.factories import lock
from tests.support.graphql import GraphQL, Subscription

pytestmark = pytest.mark.skipif(
    not TEST_DATABASE_URL, reason="needs PostgreSQL (HOLDFAST_TEST_DATABASE_URL)"
)


async def test_two_replicas_share_events_and_revocations_without_redis(settings, tmp_path):
    alone = settings.replace(redis_url=None, bus="postgres")
    a, b = (start_server(alone, tmp_path / f"{name}.log", "--workers", "1") for name in "ab")
    try:
        async with GraphQL(a.url) as on_a, GraphQL(b.url) as on_b:
            await on_a.sign_in("admin", ADMIN_PASSWORD)
            await on_a.create_user("mira")
            mira = (await on_b.login("mira", USER_PASSWORD))["accessToken"]
            async with Subscription(b.ws_url, on_a.token, {"project": "default"}) as live:
                assert "errors" not in await lock(on_a, "Content/A.uasset")
                [event] = await live.wait_for(1)
            assert (event["seq"], event["lock"]["path"]) == (1, "Content/A.uasset")
            assert await signed_in(on_b, mira)
            await on_a.data(
                "mutation($id: ID!) { updateUser(id: $id, input: {active: false}) { id } }",
                {"id": await user_id(on_a, "mira")},
            )
            assert not await signed_in(on_b, mira)
            await revocations_are_in_force_when_they_answer(on_a, on_b)
        assert "Redis" not in a.output() + b.output()
    finally:
        stop_server(a)
        stop_server(b)
