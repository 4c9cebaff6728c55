"""Fabrication parts through the API: the workflow (every transition, allowed and refused),
who may do what, the hand workers' log, filters, stats, the leaderboard, bulk delete and the
audit of every change. Claims as holds are in the hold contract (tests/test_hold_contract.py)."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.factories import users
from tests.support.parts import CREATE_PART, approved_part, grant_review, part, step


@pytest.fixture
async def people(api):
    tokens = await users(api, "mira", "noor", "rey")
    await grant_review(api, tokens["admin"], "rey")
    return tokens


async def run(api, action: str, part_id: str, token: str) -> dict:
    return await api.post(step(action), {"id": part_id}, token=token)


async def test_a_part_goes_from_review_to_made_to_done(api, people):
    made = await part(
        api,
        people["mira"],
        name="Arm plate",
        kind="CNC",
        subsystem="Arm",
        material="6061 aluminium",
        quantity=2,
        onshapeUrl="https://cad.onshape.com/x",
    )
    assert (made["shortId"], made["stage"], made["quantity"]) == ("P-0001", "REVIEW", 2)
    approved = (await run(api, "approvePart", made["id"], people["rey"]))["data"]["approvePart"]
    assert (approved["stage"], approved["reviewer"]) == ("CNC", {"username": "rey"})
    claimed = (await run(api, "claimPart", made["id"], people["noor"]))["data"]["claimPart"]
    assert claimed["claimedBy"] == {"username": "noor"} and claimed["claimedAt"]
    done = (await run(api, "completePart", made["id"], people["noor"]))["data"]["completePart"]
    assert done["stage"] == "COMPLETED" and done["completedAt"]
    back = (await run(api, "revertPart", made["id"], people["rey"]))["data"]["revertPart"]
    assert (back["stage"], back["completedAt"]) == ("CNC", None)
    history = await api.data("{ partHistory { kind part { shortId } } }", token=people["mira"])
    assert [e["kind"] for e in history["partHistory"]] == [
        "CREATED",
        "APPROVED",
        "CLAIMED",
        "COMPLETED",
        "REVERTED",
    ]


# action → the stages it may start from (claimed where it needs a claim)
ALLOWED = {
    "approvePart": {"REVIEW"},
    "claimPart": {"MADE"},
    "unclaimPart": {"CLAIMED"},
    "completePart": {"CLAIMED"},
    "revertPart": {"COMPLETED"},
}


async def _in_state(api, people, state: str) -> str:
    """A HAND part in one of: REVIEW, MADE (approved, free), CLAIMED (by noor), COMPLETED."""
    made = await part(api, people["mira"], kind="HAND")
    if state == "REVIEW":
        return made["id"]
    await run(api, "approvePart", made["id"], people["rey"])
    if state == "MADE":
        return made["id"]
    await run(api, "claimPart", made["id"], people["noor"])
    if state == "COMPLETED":
        await run(api, "completePart", made["id"], people["noor"])
    return made["id"]


@pytest.mark.parametrize("state", ["REVIEW", "MADE", "CLAIMED", "COMPLETED"])
@pytest.mark.parametrize("action", list(ALLOWED))
async def test_every_transition_is_allowed_or_refused_naming_the_stage(api, people, state, action):
    part_id = await _in_state(api, people, state)
    read = f'{{ part(id: "{part_id}") {{ stage claimedBy {{ username }} version }} }}'
    before = (await api.data(read, token=people["admin"]))["part"]
    who = people["rey"] if action in ("approvePart", "revertPart") else people["noor"]
    answer = await run(api, action, part_id, who)
    idempotent = action == "claimPart" and state == "CLAIMED"  # noor holds it already
    if state in ALLOWED[action] or idempotent:
        assert "errors" not in answer, answer
        return
    [error] = answer["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["field"] == "stage"
    assert before["stage"] in error["message"] or "not claimed" in error["message"]
    assert (await api.data(read, token=people["admin"]))["part"] == before


async def test_who_may_do_what(api, people):
    made = await part(api, people["mira"])
    for action in ("approvePart",):
        answer = await run(api, action, made["id"], people["mira"])
        assert answer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "errors" not in await run(api, "approvePart", made["id"], people["admin"])
    await run(api, "claimPart", made["id"], people["noor"])
    for action in ("unclaimPart", "completePart"):
        answer = await run(api, action, made["id"], people["mira"])
        assert answer["errors"][0]["extensions"]["code"] == "FORBIDDEN", action
    assert "errors" not in await run(api, "completePart", made["id"], people["admin"])
    answer = await run(api, "revertPart", made["id"], people["noor"])
    assert answer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "errors" not in await run(api, "revertPart", made["id"], people["rey"])
    anonymous = await run(api, "claimPart", made["id"], "")
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_permissions_are_granted_by_admins_and_shown_to_their_holder(api, people):
    me = await api.data("{ me { permissions } }", token=people["rey"])
    assert me["me"]["permissions"] == ["parts.review"]
    listed = await api.data(
        "{ users { edges { node { username permissions } } } }", token=people["admin"]
    )
    assert {"username": "rey", "permissions": ["parts.review"]} in [
        edge["node"] for edge in listed["users"]["edges"]
    ]
    code, error = await api.error(
        'mutation { updateUser(id: "1", input: {permissions: ["parts.everything"]}) { id } }',
        token=people["admin"],
    )
    assert (code, error["extensions"]["field"]) == ("BAD_USER_INPUT", "permissions")
    code, _ = await api.error(
        'mutation { updateUser(id: "1", input: {permissions: ["parts.review"]}) { id } }',
        token=people["rey"],
    )
    assert code == "FORBIDDEN"


async def test_a_hand_part_logs_its_workers_and_unclaiming_it_says_already_started(api, people):
    made = await approved_part(api, people["admin"], kind="HAND")
    await run(api, "claimPart", made["id"], people["noor"])
    unclaimed = (await run(api, "unclaimPart", made["id"], people["noor"]))["data"]["unclaimPart"]
    assert (unclaimed["claimedBy"], unclaimed["status"]) == (None, "already started")
    await run(api, "claimPart", made["id"], people["mira"])
    log = await api.data(
        f'{{ part(id: "{made["id"]}") {{ handWorkers {{ username at }} }} }}', token=people["mira"]
    )
    assert [w["username"] for w in log["part"]["handWorkers"]] == ["noor", "mira"]
    cnc = await approved_part(api, people["admin"], kind="CNC")
    await run(api, "claimPart", cnc["id"], people["noor"])
    again = (await run(api, "unclaimPart", cnc["id"], people["noor"]))["data"]["unclaimPart"]
    assert again["status"] is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": " "}, "name"),
        ({"quantity": 0}, "quantity"),
        ({"onshapeUrl": "http://cad.onshape.com/x"}, "onshapeUrl"),
        ({"onshapeUrl": "javascript:alert(1)"}, "onshapeUrl"),
        ({"subsystem": "x" * 101}, "subsystem"),
    ],
)
async def test_bad_input_names_the_field_and_creates_nothing(api, people, fields, field):
    given = {"name": "Plate", "kind": "CNC", **fields}
    code, error = await api.error(CREATE_PART, {"input": given}, token=people["mira"])
    assert (code, error["extensions"]["field"]) == ("BAD_USER_INPUT", field)
    assert (await api.data("{ parts { totalCount } }", token=people["mira"]))["parts"] == {
        "totalCount": 0
    }


async def test_concurrent_creates_get_distinct_short_ids(api, people):
    answers = await asyncio.gather(*(part(api, people["mira"], name=f"p{i}") for i in range(8)))
    assert sorted(a["shortId"] for a in answers) == [f"P-{n:04d}" for n in range(1, 9)]


async def test_filters_search_and_paging(api, people):
    admin = people["admin"]
    a = await approved_part(api, admin, name="Gearbox plate", subsystem="Drive", material="Delrin")
    b = await approved_part(api, admin, name="Wrist", kind="HAND", subsystem="Arm", notes="lathe")
    await part(api, admin, name="Bumper", kind="MISC", subsystem="Frame")
    await run(api, "claimPart", b["id"], people["noor"])
    query = """query($stage: PartStage, $kind: PartKind, $q: String, $by: String, $sub: String,
      $first: Int, $after: String) { parts(stage: $stage, kind: $kind, search: $q, claimedBy: $by,
      subsystem: $sub, first: $first, after: $after) { totalCount pageInfo { endCursor }
      edges { node { shortId } } } }"""

    async def ids(**variables):
        found = (await api.data(query, variables, token=people["mira"]))["parts"]
        return [edge["node"]["shortId"] for edge in found["edges"]]

    assert await ids(stage="REVIEW") == ["P-0003"]
    assert await ids(kind="HAND") == ["P-0002"]
    assert await ids(by="noor") == ["P-0002"]
    assert await ids(sub="drive") == ["P-0001"]
    for text in ("gearbox", "LATHE", "arm", "noor", "delrin", "p-0003"):
        assert len(await ids(q=text)) == 1, text
    first = (await api.data(query, {"first": 2}, token=people["mira"]))["parts"]
    assert [e["node"]["shortId"] for e in first["edges"]] == ["P-0001", "P-0002"]
    assert await ids(first=2, after=first["pageInfo"]["endCursor"]) == ["P-0003"]
    assert a["stage"] == "CNC"


async def test_stats_count_stages_subsystems_and_weekly_throughput(api, people):
    admin = people["admin"]
    for name in ("a", "b"):
        made = await approved_part(api, admin, name=name, subsystem="Arm")
        await run(api, "claimPart", made["id"], people["noor"])
        await run(api, "completePart", made["id"], people["noor"])
    await part(api, admin, name="c", subsystem="Drive")
    stats = await api.data(
        "{ partStats(weeks: 4) { byStage { stage count } bySubsystem { subsystem stage count } "
        "throughput { weekStart completed } } }",
        token=people["mira"],
    )
    data = stats["partStats"]
    assert data["byStage"] == [{"stage": "COMPLETED", "count": 2}, {"stage": "REVIEW", "count": 1}]
    assert {"subsystem": "Arm", "stage": "COMPLETED", "count": 2} in data["bySubsystem"]
    assert len(data["throughput"]) == 4 and data["throughput"][-1]["completed"] == 2
    assert sum(week["completed"] for week in data["throughput"]) == 2


async def test_the_leaderboard_scores_a_worked_example(api, people):
    """noor: claims two CNC parts (+1 each), one completed incorrectly (-2 instead) → 0;
    mira: claims a hand part noor worked on before (+1), noor +0.5 → noor 0.5, mira 1;
    rey: claims a part (+1) and completes it → 1."""
    admin = people["admin"]
    first = await approved_part(api, admin, name="first")
    second = await approved_part(api, admin, name="second")
    hand = await approved_part(api, admin, name="hand", kind="HAND")
    fourth = await approved_part(api, admin, name="fourth")
    await run(api, "claimPart", first["id"], people["noor"])
    await run(api, "claimPart", second["id"], people["noor"])
    await run(api, "completePart", second["id"], people["noor"])
    await api.data(
        "mutation($id: ID!) { updatePart(id: $id, input: {completedIncorrectly: true}) { id } }",
        {"id": second["id"]},
        token=people["rey"],
    )
    await run(api, "claimPart", hand["id"], people["noor"])
    await run(api, "unclaimPart", hand["id"], people["noor"])
    await run(api, "claimPart", hand["id"], people["mira"])
    await run(api, "claimPart", fourth["id"], people["rey"])
    await run(api, "completePart", fourth["id"], people["rey"])
    board = await api.data("{ partLeaderboard { user { username } score } }", token=admin)
    assert [(e["user"]["username"], e["score"]) for e in board["partLeaderboard"]] == [
        ("mira", 1.0),
        ("rey", 1.0),
        ("noor", -0.5),
    ]


async def test_a_bulk_delete_needs_its_confirmation_and_is_audited(api, people):
    admin = people["admin"]
    ids = [(await part(api, admin, name=f"p{i}"))["id"] for i in range(3)]
    delete = (
        "mutation($ids: [ID!]!, $c: String) { deleteParts(ids: $ids, confirm: $c) { shortId } }"
    )
    code, _ = await api.error(delete, {"ids": ids, "c": "delete 3 parts"}, token=people["mira"])
    assert code == "FORBIDDEN"
    code, error = await api.error(delete, {"ids": ids}, token=admin)
    assert (code, error["extensions"]["field"]) == ("BAD_USER_INPUT", "confirm")
    code, _ = await api.error(delete, {"ids": ids, "c": "delete 2 parts"}, token=admin)
    assert code == "BAD_USER_INPUT"
    assert (await api.data("{ parts { totalCount } }", token=admin))["parts"]["totalCount"] == 3
    deleted = await api.data(delete, {"ids": ids, "c": "delete 3 parts"}, token=admin)
    assert [p["shortId"] for p in deleted["deleteParts"]] == ["P-0001", "P-0002", "P-0003"]
    assert (await api.data("{ parts { totalCount } }", token=admin))["parts"]["totalCount"] == 0
    log = await api.data(
        '{ auditLog(resourceType: "part") { edges { node { action snapshot } } } }', token=admin
    )
    deletions = [e["node"] for e in log["auditLog"]["edges"] if e["node"]["action"] == "delete"]
    assert sorted(d["snapshot"]["shortId"] for d in deletions) == ["P-0001", "P-0002", "P-0003"]
    events = await api.data("{ partHistory { kind } }", token=admin)
    assert [e["kind"] for e in events["partHistory"]].count("DELETED") == 3


async def test_every_change_is_audited(api, people):
    made = await approved_part(api, people["admin"], name="Audited")
    await run(api, "claimPart", made["id"], people["noor"])
    await run(api, "completePart", made["id"], people["noor"])
    await api.data(
        'mutation($id: ID!) { updatePart(id: $id, input: {notes: "sanded"}) { id } }',
        {"id": made["id"]},
        token=people["rey"],
    )
    log = await api.data(
        'query($id: String) { auditLog(resourceType: "part", resourceId: $id) '
        "{ edges { node { action actor { username } changes } } } }",
        {"id": made["id"]},
        token=people["admin"],
    )
    entries = [edge["node"] for edge in reversed(log["auditLog"]["edges"])]
    assert [e["action"] for e in entries] == ["create", "approve", "claim", "complete", "update"]
    assert entries[1]["changes"]["stage"] == ["REVIEW", "CNC"]
    assert entries[2]["changes"]["claimedBy"] == [None, "noor"]
    assert entries[4]["changes"]["notes"] == [None, "sanded"]
