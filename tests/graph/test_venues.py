"""Events at venues through the API: venues made on first use (once, whatever the case) or by
admins, events listed and paged by start, edited and deleted by their organiser or an admin,
and never two overlapping events at one venue — refused by the database, under concurrency
too — with the audit of every change and the state left by every refusal."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.factories import users

EVENT = """id title startsAt endsAt blocksUntil description venue { id name address }
    organiser { username }"""
CREATE = f"""mutation($input: CreateEventInput!) {{ createEvent(input: $input) {{ {EVENT} }} }}"""
UPDATE = f"""mutation($id: ID!, $input: UpdateEventInput!) {{
    updateEvent(id: $id, input: $input) {{ {EVENT} }} }}"""
DELETE = f"""mutation($id: ID!) {{ deleteEvent(id: $id) {{ {EVENT} }} }}"""
READ = f"""query($id: ID!) {{ event(id: $id) {{ {EVENT} }} }}"""
LIST = """query($from: DateTime, $to: DateTime, $venue: String, $first: Int, $after: String) {
    events(from: $from, to: $to, venue: $venue, first: $first, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id title } } } }"""
VENUES = "{ venues { id name address } }"
CREATE_VENUE = """mutation($input: CreateVenueInput!) { createVenue(input: $input) {
    id name address } }"""
AUDIT = """query($type: String) { auditLog(resourceType: $type, first: 100) {
    edges { node { action resourceId actor { username } changes snapshot } } } }"""

DAY = "2031-03-14"


def at(clock: str, day: str = DAY) -> str:
    return f"{day}T{clock}:00Z"


@pytest.fixture
async def people(api):
    return await users(api, "mira", "noor")


async def create(api, token, **fields) -> dict:
    given = {"title": "Talk", "venue": "Hall A", "startsAt": at("18:00"), **fields}
    return await api.post(CREATE, {"input": given}, token=token)


async def made(api, token, **fields) -> dict:
    answer = await create(api, token, **fields)
    assert "errors" not in answer, answer
    return answer["data"]["createEvent"]


async def read(api, token, event_id) -> dict | None:
    return (await api.data(READ, {"id": event_id}, token=token))["event"]


async def listed(api, token, **variables) -> list[str]:
    found = (await api.data(LIST, {"from": at("00:00"), **variables}, token=token))["events"]
    return [edge["node"]["title"] for edge in found["edges"]]


async def audit(api, admin, kind) -> list[dict]:
    found = (await api.data(AUDIT, {"type": kind}, token=admin))["auditLog"]
    return [edge["node"] for edge in found["edges"]]


async def test_an_event_is_published_read_and_listed_and_its_venue_made(api, people):
    event = await made(
        api,
        people["mira"],
        title="Launch",
        venue="Hall A",
        address="1 Main St",
        startsAt="2031-03-14T19:00:00+01:00",
        endsAt=at("20:00"),
        description="Come along",
    )
    assert event["startsAt"] == at("18:00").replace("Z", "+00:00")
    assert event["endsAt"] == event["blocksUntil"] == at("20:00").replace("Z", "+00:00")
    assert event["venue"]["name"] == "Hall A" and event["venue"]["address"] == "1 Main St"
    assert event["organiser"] == {"username": "mira"}
    assert await read(api, people["noor"], event["id"]) == event
    assert await listed(api, people["noor"]) == ["Launch"]
    venues = (await api.data(VENUES, token=people["noor"]))["venues"]
    assert venues == [event["venue"]]
    [venue_made] = await audit(api, people["admin"], "venue")
    assert (venue_made["action"], venue_made["actor"]) == ("create", {"username": "mira"})
    [created] = await audit(api, people["admin"], "event")
    assert created["action"] == "create" and created["resourceId"] == event["id"]
    assert created["changes"]["title"] == [None, "Launch"]
    anonymous = await api.post(READ, {"id": event["id"]})
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    code, _ = await api.error(VENUES)
    assert code == "UNAUTHENTICATED"


async def test_venues_are_one_whatever_the_case_and_admins_make_them(api, people):
    first = await made(api, people["mira"], venue="Hall A", startsAt=at("10:00"))
    second = await made(api, people["noor"], venue="  hall a ", startsAt=at("14:00"))
    assert second["venue"] == first["venue"]
    code, error = await api.error(
        CREATE_VENUE, {"input": {"name": "HALL A"}}, token=people["admin"]
    )
    assert (code, error["extensions"]["field"]) == ("CONFLICT", "name")
    code, _ = await api.error(CREATE_VENUE, {"input": {"name": "Annex"}}, token=people["mira"])
    assert code == "FORBIDDEN"
    for bad in ({"name": " "}, {"name": "x" * 201}, {"name": "Ok", "address": "y" * 501}):
        code, error = await api.error(CREATE_VENUE, {"input": bad}, token=people["admin"])
        assert code == "BAD_USER_INPUT", bad
        assert error["extensions"]["field"] in ("name", "address")
    assert [v["name"] for v in (await api.data(VENUES, token=people["mira"]))["venues"]] == [
        "Hall A"
    ]
    annex = (
        await api.data(
            CREATE_VENUE,
            {"input": {"name": "Annex", "address": "2 Side St"}},
            token=people["admin"],
        )
    )["createVenue"]
    assert annex["address"] == "2 Side St"
    names = [v["name"] for v in (await api.data(VENUES, token=people["mira"]))["venues"]]
    assert names == ["Annex", "Hall A"]
    assert len(await audit(api, people["admin"], "venue")) == 2


async def test_many_callers_naming_a_new_venue_at_once_make_one(api, people):
    answers = await asyncio.gather(
        *(
            create(api, people["mira"], venue="New Barn", startsAt=at(f"{hour:02d}:00"))
            for hour in range(0, 24, 3)
        )
    )
    assert all("errors" not in answer for answer in answers), answers
    assert len({a["data"]["createEvent"]["venue"]["id"] for a in answers}) == 1
    assert len((await api.data(VENUES, token=people["mira"]))["venues"]) == 1
    assert len(await audit(api, people["admin"], "venue")) == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": " "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"venue": ""}, "venue"),
        ({"startsAt": "2031-03-14T18:00:00"}, "startsAt"),
        ({"endsAt": "2031-03-14T20:00:00"}, "endsAt"),
        ({"endsAt": at("18:00")}, "endsAt"),
        ({"endsAt": at("17:00")}, "endsAt"),
        ({"description": "x" * 10_001}, "description"),
        ({"address": "x" * 501}, "address"),
    ],
)
async def test_bad_input_names_the_field_and_makes_nothing(api, people, fields, field):
    code, error = await api.error(
        CREATE,
        {"input": {"title": "Talk", "venue": "Hall A", "startsAt": at("18:00"), **fields}},
        token=people["mira"],
    )
    assert (code, error["extensions"]["field"]) == ("BAD_USER_INPUT", field)
    assert await listed(api, people["mira"]) == []
    assert (await api.data(VENUES, token=people["mira"]))["venues"] == []
    assert await audit(api, people["admin"], "event") == []


async def test_an_overlap_is_a_conflict_naming_the_other_event(api, people):
    talk = await made(api, people["mira"], title="Talk", startsAt=at("18:00"), endsAt=at("20:00"))
    for start, end in (
        ("19:00", "21:00"),
        ("17:00", "18:30"),
        ("18:30", "19:00"),
        ("17:00", "22:00"),
    ):
        answer = await create(
            api, people["noor"], title="Clash", startsAt=at(start), endsAt=at(end)
        )
        [error] = answer["errors"]
        assert error["extensions"]["code"] == "CONFLICT", (start, end)
        assert error["extensions"]["event"]["id"] == talk["id"]
        assert error["extensions"]["event"]["title"] == "Talk"
        assert "Talk" in error["message"]
    # touching ends are fine, and so is another venue at the same time
    await made(api, people["noor"], title="After", startsAt=at("20:00"), endsAt=at("21:00"))
    await made(api, people["noor"], title="Before", startsAt=at("17:00"), endsAt=at("18:00"))
    await made(api, people["noor"], title="Elsewhere", venue="Annex", startsAt=at("18:00"))
    assert await listed(api, people["noor"]) == ["Before", "Talk", "Elsewhere", "After"]
    assert len(await audit(api, people["admin"], "event")) == 4


async def test_an_event_without_an_end_blocks_its_venue_for_the_default_length(api, people):
    open_ended = await made(api, people["mira"], title="Open", startsAt=at("18:00"))
    assert open_ended["endsAt"] is None
    assert open_ended["blocksUntil"] == "2031-03-14T20:00:00+00:00"  # 120 minutes
    answer = await create(api, people["noor"], startsAt=at("19:59"), endsAt=at("21:00"))
    assert answer["errors"][0]["extensions"]["event"]["id"] == open_ended["id"]
    await made(api, people["noor"], title="Next", startsAt=at("20:00"), endsAt=at("21:00"))
    settings = """mutation($m: Int!) { updateRuntimeSettings(input: {eventDefaultMinutes: $m}) {
        eventDefaultMinutes } }"""
    code, _ = await api.error(settings, {"m": 30}, token=people["mira"])
    assert code == "FORBIDDEN"
    code, _ = await api.error(settings, {"m": 0}, token=people["admin"])
    assert code == "BAD_USER_INPUT"
    changed = await api.data(settings, {"m": 30}, token=people["admin"])
    assert changed["updateRuntimeSettings"]["eventDefaultMinutes"] == 30
    short = await made(api, people["noor"], title="Short", startsAt=at("21:00"))
    assert short["blocksUntil"] == "2031-03-14T21:30:00+00:00"
    # what was written keeps the window it was written with
    assert (await read(api, people["noor"], open_ended["id"]))["blocksUntil"] == open_ended[
        "blocksUntil"
    ]
    await made(api, people["noor"], title="Later", startsAt=at("21:30"))


async def test_racing_for_one_slot_has_exactly_one_winner(api, people):
    answers = await asyncio.gather(
        *(
            create(api, people["noor" if i % 2 else "mira"], title=f"Race {i}", venue="Arena")
            for i in range(8)
        )
    )
    winners = [a["data"]["createEvent"] for a in answers if "errors" not in a]
    assert len(winners) == 1, answers
    [winner] = winners
    losers = [a["errors"][0] for a in answers if "errors" in a]
    assert len(losers) == 7
    for error in losers:
        assert error["extensions"]["code"] == "CONFLICT", error
        assert error["extensions"]["event"] == {
            "id": winner["id"],
            "title": winner["title"],
            "startsAt": winner["startsAt"],
            "blocksUntil": winner["blocksUntil"],
        }
    assert await listed(api, people["mira"]) == [winner["title"]]
    assert len((await api.data(VENUES, token=people["mira"]))["venues"]) == 1
    assert len(await audit(api, people["admin"], "event")) == 1


async def test_racing_updates_into_one_slot_have_one_winner(api, people):
    mine = await made(api, people["mira"], title="Mine", startsAt=at("09:00"))
    theirs = await made(api, people["noor"], title="Theirs", startsAt=at("13:00"))
    moved = {"startsAt": at("18:00"), "endsAt": at("19:00")}
    answers = await asyncio.gather(
        api.post(UPDATE, {"id": mine["id"], "input": moved}, token=people["mira"]),
        api.post(UPDATE, {"id": theirs["id"], "input": moved}, token=people["noor"]),
    )
    assert sum("errors" not in answer for answer in answers) == 1, answers
    [error] = [answer["errors"][0] for answer in answers if "errors" in answer]
    assert error["extensions"]["code"] == "CONFLICT"
    starts = sorted(
        [(await read(api, people["mira"], e["id"]))["startsAt"][11:16] for e in (mine, theirs)]
    )
    assert starts in (["09:00", "18:00"], ["13:00", "18:00"])


async def test_the_organiser_or_an_admin_edits_others_are_forbidden(api, people):
    event = await made(api, people["mira"], title="Talk", startsAt=at("18:00"), endsAt=at("20:00"))
    code, _ = await api.error(
        UPDATE, {"id": event["id"], "input": {"title": "Mine now"}}, token=people["noor"]
    )
    assert code == "FORBIDDEN"
    code, _ = await api.error(UPDATE, {"id": event["id"], "input": {"title": "x"}}, token="")
    assert code == "UNAUTHENTICATED"
    assert await read(api, people["mira"], event["id"]) == event

    renamed = (
        await api.data(
            UPDATE,
            {"id": event["id"], "input": {"title": "Keynote", "description": "Big"}},
            token=people["mira"],
        )
    )["updateEvent"]
    assert (renamed["title"], renamed["description"], renamed["startsAt"]) == (
        "Keynote",
        "Big",
        event["startsAt"],
    )
    moved = (
        await api.data(
            UPDATE,
            {
                "id": event["id"],
                "input": {"venue": "Annex", "address": "2 Side St", "endsAt": None},
            },
            token=people["admin"],
        )
    )["updateEvent"]
    assert moved["venue"]["name"] == "Annex" and moved["venue"]["address"] == "2 Side St"
    assert moved["endsAt"] is None and moved["blocksUntil"] == "2031-03-14T20:00:00+00:00"
    assert moved["organiser"] == {"username": "mira"}
    updates = [e for e in await audit(api, people["admin"], "event") if e["action"] == "update"]
    assert [e["actor"]["username"] for e in updates] == ["admin", "mira"]
    assert updates[0]["changes"]["venue"] == ["Hall A", "Annex"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": None}, "title"),
        ({"title": " "}, "title"),
        ({"startsAt": None}, "startsAt"),
        ({"startsAt": "2031-03-14T19:00:00"}, "startsAt"),
        ({"startsAt": at("20:30")}, "endsAt"),  # after the event's end
        ({"endsAt": at("17:00")}, "endsAt"),
        ({"venue": None}, "venue"),
        ({"venue": " "}, "venue"),
    ],
)
async def test_bad_updates_name_the_field_and_change_nothing(api, people, fields, field):
    event = await made(api, people["mira"], startsAt=at("18:00"), endsAt=at("20:00"))
    code, error = await api.error(
        UPDATE, {"id": event["id"], "input": fields}, token=people["mira"]
    )
    assert (code, error["extensions"]["field"]) == ("BAD_USER_INPUT", field)
    assert await read(api, people["mira"], event["id"]) == event
    assert [e["action"] for e in await audit(api, people["admin"], "event")] == ["create"]


async def test_an_update_into_another_events_time_is_a_conflict_and_changes_nothing(api, people):
    first = await made(api, people["mira"], title="First", startsAt=at("10:00"))
    second = await made(api, people["mira"], title="Second", startsAt=at("14:00"))
    code, error = await api.error(
        UPDATE, {"id": second["id"], "input": {"startsAt": at("11:00")}}, token=people["mira"]
    )
    assert code == "CONFLICT" and error["extensions"]["event"]["id"] == first["id"]
    assert await read(api, people["mira"], second["id"]) == second
    # an event does not overlap itself: moving it within its own window is fine
    shifted = await api.data(
        UPDATE, {"id": second["id"], "input": {"startsAt": at("14:30")}}, token=people["mira"]
    )
    assert shifted["updateEvent"]["blocksUntil"] == "2031-03-14T16:30:00+00:00"
    for missing in ("999999", "x"):
        code, _ = await api.error(
            UPDATE, {"id": missing, "input": {"title": "y"}}, token=people["mira"]
        )
        assert code in ("NOT_FOUND", "BAD_USER_INPUT")


async def test_the_organiser_or_an_admin_deletes(api, people):
    talk = await made(api, people["mira"], title="Talk", startsAt=at("10:00"))
    other = await made(api, people["mira"], title="Other", startsAt=at("14:00"))
    code, _ = await api.error(DELETE, {"id": talk["id"]}, token=people["noor"])
    assert code == "FORBIDDEN"
    assert await read(api, people["noor"], talk["id"]) == talk
    gone = (await api.data(DELETE, {"id": talk["id"]}, token=people["mira"]))["deleteEvent"]
    assert gone == talk
    assert await read(api, people["mira"], talk["id"]) is None
    code, _ = await api.error(DELETE, {"id": talk["id"]}, token=people["mira"])
    assert code == "NOT_FOUND"
    code, _ = await api.error(DELETE, {"id": "nope"}, token=people["mira"])
    assert code == "BAD_USER_INPUT"
    await api.data(DELETE, {"id": other["id"]}, token=people["admin"])
    assert await listed(api, people["mira"]) == []
    # the slot is free again
    await made(api, people["noor"], title="Again", startsAt=at("10:00"))
    deletes = [e for e in await audit(api, people["admin"], "event") if e["action"] == "delete"]
    assert [e["actor"]["username"] for e in deletes] == ["admin", "mira"]
    assert deletes[1]["snapshot"]["title"] == "Talk"


async def test_listing_filters_by_time_and_venue_and_pages_by_start(api, people):
    token = people["mira"]
    await made(api, token, title="Past", startsAt="2020-01-01T10:00:00Z")
    for day, title, venue in (
        ("2031-03-15", "Sat A", "Hall A"),
        ("2031-03-15", "Sat B", "Annex"),
        ("2031-03-16", "Sun A", "Hall A"),
        ("2031-03-17", "Mon B", "Annex"),
    ):
        await made(api, token, title=title, venue=venue, startsAt=at("10:00", day))
    everything = (await api.data(LIST, {}, token=token))["events"]
    assert [e["node"]["title"] for e in everything["edges"]] == ["Sat A", "Sat B", "Sun A", "Mon B"]
    assert await listed(api, token, venue="hall a") == ["Sat A", "Sun A"]
    assert await listed(api, token, venue="nowhere") == []
    assert await listed(api, token, **{"from": at("00:00", "2031-03-16")}) == ["Sun A", "Mon B"]
    assert await listed(api, token, to=at("00:00", "2031-03-16")) == ["Sat A", "Sat B"]
    # an event under way at `from` is listed
    assert await listed(api, token, **{"from": at("11:00", "2031-03-17")}) == ["Mon B"]
    assert await listed(api, token, **{"from": at("12:00", "2031-03-17")}) == []
    assert await listed(api, token, **{"from": "2020-01-01T00:00:00Z"}) == [
        "Past",
        "Sat A",
        "Sat B",
        "Sun A",
        "Mon B",
    ]

    seen, after = [], None
    while True:
        page = (await api.data(LIST, {"first": 2, "after": after}, token=token))["events"]
        assert page["totalCount"] == 4
        seen += [edge["node"]["title"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ["Sat A", "Sat B", "Sun A", "Mon B"]

    for variables, field in (
        ({"from": "2031-03-15T00:00:00"}, "from"),
        ({"from": at("00:00", "2031-03-16"), "to": at("00:00", "2031-03-15")}, "to"),
        ({"after": "garbage"}, "after"),
        ({"first": -1}, "first"),
    ):
        code, error = await api.error(LIST, variables, token=token)
        assert (code, error["extensions"]["field"]) == ("BAD_USER_INPUT", field), variables
    code, _ = await api.error(LIST, {})
    assert code == "UNAUTHENTICATED"
