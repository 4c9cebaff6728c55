"""The hold contract, once for every area (tests/support/holds.py): a thing is held by one
person at a time; a conflict names the holder; only the holder gives it back, an admin may
force it and the holder is told (live and by mail); anyone may ask for it; every change is an
event on the area's stream, replayed with `since` with no gap and no duplicate; bad input and the
wrong role change nothing; and two replicas racing for one thing have exactly one winner."""

import asyncio

import pytest
from sqlalchemy import select

from db.engine import Database
from db.notify import OutboxMessage
from tests.conftest import start_server, stop_server
from tests.support.factories import users
from tests.support.graphql import GraphQL, Subscription
from tests.support.holds import AREAS

pytestmark = pytest.mark.parametrize("area", AREAS, ids=lambda area: area.name)


async def outbox(database_url: str) -> list[OutboxMessage]:
    db = Database(database_url)
    try:
        async with db.read() as session:
            return list((await session.execute(select(OutboxMessage))).scalars())
    finally:
        await db.dispose()


@pytest.fixture
async def people(api):
    return await users(api, "mira", "noor")


async def test_one_holder_a_conflict_names_them_and_only_they_give_it_back(
    area, api, people, settings
):
    thing = await area.target(api, people["admin"])
    taken = await area.take(api, people["mira"], thing)
    assert "errors" not in taken, taken
    assert await area.take(api, people["mira"], thing) == taken  # idempotent for the holder

    refused = await area.take(api, people["noor"], thing)
    [error] = refused["errors"]
    assert error["extensions"]["code"] == "CONFLICT"
    assert area.holder_named(error) == "mira" and "mira" in error["message"]

    not_theirs = await area.release(api, people["noor"], thing)
    assert not_theirs["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await area.held(settings.database_url) == {thing: "mira"}

    assert "errors" not in await area.release(api, people["mira"], thing)
    assert await area.held(settings.database_url) == {}
    kinds = [event["kind"] for event in await area.history(api, people["admin"])]
    assert kinds == [area.kinds.taken, area.kinds.released]


async def test_an_admin_forces_it_and_the_holder_is_told(area, api, app, people, settings):
    thing = await area.target(api, people["admin"])
    await area.take(api, people["mira"], thing)
    forbidden = await area.release(api, people["noor"], thing, force=True)
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"  # the wrong role
    assert await area.held(settings.database_url) == {thing: "mira"}

    forced = await area.release(api, people["admin"], thing, force=True)
    assert "errors" not in forced, forced
    [*_, event] = await area.history(api, people["mira"])
    assert (event["kind"], event["actor"], area.holder_of(event)) == (
        area.kinds.forced,
        {"username": "admin"},
        "mira",
    )
    assert await area.held(settings.database_url) == {}
    await app.state.services.notifier.mail_about_events()
    told = [message.to_address for message in await outbox(settings.database_url)]
    assert told == ["mira@example.com"]


async def test_anyone_may_ask_the_holder(area, api, app, people, settings):
    thing = await area.target(api, people["admin"])
    await area.take(api, people["mira"], thing)
    asked = await area.ask(api, people["noor"], thing, "need it for the build")
    assert "errors" not in asked, asked
    [*_, event] = await area.history(api, people["mira"])
    assert (event["kind"], event["actor"], event["message"]) == (
        area.kinds.asked,
        {"username": "noor"},
        "need it for the build",
    )
    yourself = await area.ask(api, people["mira"], thing, "me?")
    assert yourself["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await area.held(settings.database_url) == {thing: "mira"}  # asking changes nothing
    await app.state.services.notifier.mail_about_events()
    assert [m.to_address for m in await outbox(settings.database_url)] == ["mira@example.com"]


async def test_bad_input_changes_nothing(area, api, people, settings):
    before = await area.history(api, people["admin"])
    for target, code in area.bad_targets:
        answer = await area.take(api, people["mira"], target)
        assert answer["errors"][0]["extensions"]["code"] == code, (target, answer)
    anonymous = await area.take(api, "", await area.target(api, people["admin"]))
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await area.history(api, people["admin"]) == before
    assert await area.held(settings.database_url) == {}


async def test_since_replays_every_event_then_live_with_no_gap_and_no_duplicate(
    area, settings, tmp_path
):
    server = start_server(settings, tmp_path / "server.log")
    try:
        async with GraphQL(server.url) as api:
            people = await users(api, "mira")
            things = [await area.target(api, people["admin"], index) for index in range(3)]
            for thing in things:
                await area.take(api, people["mira"], thing)
            first = (await area.history(api, people["mira"]))[0]["seq"]
            query, variables = area.live(since=first)
            live = Subscription(server.ws_url, people["mira"], variables, query)
            async with live:
                await live.wait_for(2)
                await area.release(api, people["mira"], things[0])
                await area.release(api, people["mira"], things[1])
                await live.wait_for(4)
                await asyncio.sleep(0.3)
            assert live.seqs == [first + 1, first + 2, first + 3, first + 4]
            assert [event["kind"] for event in live.events] == [area.kinds.taken] * 2 + [
                area.kinds.released
            ] * 2
            history = await area.history(api, people["mira"], since=first)
            assert [event["seq"] for event in history] == live.seqs
    finally:
        stop_server(server)


async def test_two_replicas_racing_for_one_thing_have_one_winner(
    area, settings, shared_redis_url, tmp_path
):
    shared = settings.replace(redis_url=shared_redis_url)
    replicas = [start_server(shared, tmp_path / f"{name}.log") for name in "ab"]
    try:
        clients = [GraphQL(replica.url) for replica in replicas]
        names = [f"racer{index}" for index in range(8)]
        people = await users(clients[0], *names)
        thing = await area.target(clients[0], people["admin"])
        answers = await asyncio.gather(
            *(
                area.take(clients[index % 2], people[name], thing)
                for index, name in enumerate(names)
            )
        )
        winners = [
            name for name, answer in zip(names, answers, strict=True) if "errors" not in answer
        ]
        assert len(winners) == 1, answers
        for answer in answers:
            if "errors" in answer:
                assert answer["errors"][0]["extensions"]["code"] == "CONFLICT"
                assert area.holder_named(answer["errors"][0]) == winners[0]
        assert await area.held(settings.database_url) == {thing: winners[0]}
        for client in clients:
            await client.close()
    finally:
        for replica in replicas:
            stop_server(replica)


async def test_a_deactivated_user_holds_nothing_even_while_taking_at_that_moment(
    area, api, people, settings
):
    things = [await area.target(api, people["admin"], index) for index in range(20)]
    mira_id = next(
        edge["node"]["id"]
        for edge in (
            await api.data("{ users { edges { node { id username } } } }", token=people["admin"])
        )["users"]["edges"]
        if edge["node"]["username"] == "mira"
    )
    deactivate = api.data(
        "mutation($id: ID!) { updateUser(id: $id, input: {active: false}) { id } }",
        {"id": mira_id},
        token=people["admin"],
    )
    answers = await asyncio.gather(
        *(area.take(api, people["mira"], thing) for thing in things[:10]),
        deactivate,
        *(area.take(api, people["mira"], thing) for thing in things[10:]),
    )
    refused = [a for a in answers if isinstance(a, dict) and "errors" in a]
    assert all(a["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED" for a in refused)
    assert "mira" not in (await area.held(settings.database_url)).values()
