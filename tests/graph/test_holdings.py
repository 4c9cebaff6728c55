"""Everything one person holds, across every area (one query on the engine), and a
deactivation releasing all of it at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.assets import gpu
from tests.support.factories import lock, users
from tests.support.parking import lot, park
from tests.support.parts import approved_part, step

HELD = "query($u: String) { heldBy(username: $u) { area what since until } }"


async def _hold_everything(api, tokens) -> None:
    await lock(api, "Content/Maps/Arena.umap", token=tokens["mira"])
    card = await gpu(api, tokens["admin"], serial="G-1", model="A100")
    due = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    await api.data(
        "mutation($id: ID!, $d: DateTime) { claimGpu(id: $id, dueBack: $d) { id } }",
        {"id": card["id"], "d": due},
        token=tokens["mira"],
    )
    made = await approved_part(api, tokens["admin"], name="Bracket")
    await api.data(step("claimPart"), {"id": made["id"]}, token=tokens["mira"])
    done = await approved_part(api, tokens["admin"], name="Done one")
    await api.data(step("claimPart"), {"id": done["id"]}, token=tokens["mira"])
    await api.data(step("completePart"), {"id": done["id"]}, token=tokens["mira"])
    north = await lot(api, tokens["admin"], name="North")
    parked = await park(api, tokens["mira"], north["id"])
    assert "errors" not in parked, parked


async def test_one_query_says_what_one_person_holds_everywhere(api):
    tokens = await users(api, "mira", "noor")
    await _hold_everything(api, tokens)
    mine = (await api.data(HELD, token=tokens["mira"]))["heldBy"]
    assert [(h["area"], h["what"]) for h in mine] == [
        ("spots", "North spot 1"),
        ("parts", "P-0001 Bracket"),
        ("gpus", "G-1 (A100)"),
        ("locks", "default:Content/Maps/Arena.umap"),
    ]  # newest first; a completed part is no longer held
    assert mine[2]["until"] is not None and mine[3]["until"] is None
    assert (await api.data(HELD, {"u": "mira"}, token=tokens["admin"]))["heldBy"] == mine
    assert (await api.data(HELD, token=tokens["noor"]))["heldBy"] == []
    code, _ = await api.error(HELD, {"u": "mira"}, token=tokens["noor"])
    assert code == "FORBIDDEN"


async def test_deactivating_a_user_releases_every_hold_in_every_area(api):
    tokens = await users(api, "mira")
    await _hold_everything(api, tokens)
    listed = await api.data("{ users { edges { node { id username } } } }", token=tokens["admin"])
    [mira] = [e["node"]["id"] for e in listed["users"]["edges"] if e["node"]["username"] == "mira"]
    await api.data(
        "mutation($id: ID!) { updateUser(id: $id, input: {active: false}) { id } }",
        {"id": mira},
        token=tokens["admin"],
    )
    assert (await api.data(HELD, {"u": "mira"}, token=tokens["admin"]))["heldBy"] == []
    admin = tokens["admin"]
    locks = await api.data('{ lockHistory(project: "default") { kind } }', token=admin)
    gpus = await api.data("{ gpuHistory { kind } }", token=admin)
    parts = await api.data("{ partHistory { kind message } }", token=admin)

    assert locks["lockHistory"][-1]["kind"] == "FORCE_RELEASED"
    assert gpus["gpuHistory"][-1]["kind"] == "FORCE_RELEASED"
    assert parts["partHistory"][-1]["kind"] == "UNCLAIMED"
    [north] = (await api.data("{ parkingLots { id } }", token=admin))["parkingLots"]
    spots = await api.data(
        "query($id: ID!) { lotHistory(lotId: $id) { kind } }", {"id": north["id"]}, token=admin
    )
    assert spots["lotHistory"][-1]["kind"] == "FORCE_RELEASED"
    log = await api.data(
        '{ auditLog(actor: "admin") { edges { node { action resourceType } } } }', token=admin
    )
    actions = {(e["node"]["action"], e["node"]["resourceType"]) for e in log["auditLog"]["edges"]}
    assert ("update", "user") in actions
