"""Lists served from the read cache are never stale: a new lock (on this replica or another),
a lock that expired without an event yet and a changed owner each show at once."""

import asyncio

import pytest

from tests.conftest import ADMIN_PASSWORD, start_server, stop_server
from tests.support.factories import lock, users
from tests.support.graphql import GraphQL

LIST = """query($p: String!) { locks(project: $p) { totalCount seq edges { node {
    path expiresAt owner { username role } } } } }"""


@pytest.fixture
async def people(api):
    return await users(api, "mira", "noor")


async def listed(api, token, project="default"):
    return (await api.data(LIST, {"p": project}, token=token))["locks"]


async def test_a_new_lock_shows_at_once(api, people):
    assert (await listed(api, people["mira"]))["totalCount"] == 0
    assert (await listed(api, people["mira"]))["totalCount"] == 0  # now from the cache
    await lock(api, "Content/A.uasset", token=people["noor"])
    after = await listed(api, people["mira"])
    assert (after["totalCount"], after["seq"]) == (1, 1)
    assert after["edges"][0]["node"]["owner"] == {"username": "noor", "role": "USER"}


async def test_a_lock_that_expires_leaves_the_list_before_any_event(api, people):
    await api.data(
        'mutation { acquireLock(project: "default", path: "Soon.uasset", ttlSeconds: 1) { id } }',
        token=people["mira"],
    )
    assert (await listed(api, people["noor"]))["totalCount"] == 1
    await asyncio.sleep(1.2)
    after = await listed(api, people["noor"])
    assert (after["totalCount"], after["seq"]) == (0, 1)  # no EXPIRED event yet


async def test_a_change_to_an_owner_shows_at_once(api, people):
    await lock(api, "Content/A.uasset", token=people["mira"])
    assert (await listed(api, people["noor"]))["edges"][0]["node"]["owner"]["role"] == "USER"
    edges = await api.data("{ users { edges { node { id username } } } }", token=people["admin"])
    mira = next(e["node"]["id"] for e in edges["users"]["edges"] if e["node"]["username"] == "mira")
    await api.data(
        "mutation($id: ID!) { updateUser(id: $id, input: {role: ADMIN}) { id } }",
        {"id": mira},
        token=people["admin"],
    )
    assert (await listed(api, people["noor"]))["edges"][0]["node"]["owner"]["role"] == "ADMIN"


async def test_a_lock_taken_on_another_replica_shows_at_once(settings, shared_redis_url, tmp_path):
    shared = settings.replace(redis_url=shared_redis_url)
    a, b = (start_server(shared, tmp_path / f"{name}.log") for name in "ab")
    try:
        async with GraphQL(a.url) as on_a, GraphQL(b.url) as on_b:
            token = (await on_a.login("admin", ADMIN_PASSWORD))["accessToken"]
            for _ in range(2):
                assert (await listed(on_b, token))["totalCount"] == 0
            await lock(on_a, "Content/A.uasset", token=token)
            assert (await listed(on_b, token))["totalCount"] == 1
    finally:
        stop_server(a)
        stop_server(b)
