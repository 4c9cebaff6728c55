"""GPU holds beyond the hold contract (tests/test_hold_contract.py): due-back times, admins
assigning, overdue reminders, history per GPU and per user, and the list's filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from db.assets import GpuEvent, GpuHold
from db.engine import Database
from db.notify import OutboxMessage
from tests.support.assets import gpu
from tests.support.factories import users

CLAIM = """mutation($id: ID!, $due: DateTime) {
  claimGpu(id: $id, dueBack: $due) { id holder { username } heldSince dueBack fencingToken } }"""
ASSIGN = """mutation($id: ID!, $user: String!, $due: DateTime) {
  assignGpu(id: $id, username: $user, dueBack: $due) { id holder { username } dueBack } }"""
RELEASE = "mutation($id: ID!) { releaseGpu(id: $id) { id } }"
HISTORY = """query($gpu: ID, $user: String) { gpuHistory(gpuId: $gpu, username: $user) {
  seq kind actor { username } gpu { serial holder { username } } } }"""


@pytest.fixture
async def people(api):
    return await users(api, "mira", "noor")


def later(**delta) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


async def outbox(database_url: str) -> list[OutboxMessage]:
    db = Database(database_url)
    try:
        async with db.read() as session:
            return list((await session.execute(select(OutboxMessage))).scalars())
    finally:
        await db.dispose()


async def test_a_claim_carries_its_due_back_time_and_the_list_filters(api, people):
    cards = [await gpu(api, people["admin"], serial=f"G{i}", model="H100") for i in range(3)]
    due = later(days=2)
    held = (await api.data(CLAIM, {"id": cards[0]["id"], "due": due}, token=people["mira"]))[
        "claimGpu"
    ]
    assert held["holder"] == {"username": "mira"} and held["heldSince"]
    assert datetime.fromisoformat(held["dueBack"]) == datetime.fromisoformat(due)
    await api.data(CLAIM, {"id": cards[1]["id"]}, token=people["noor"])

    query = (
        "query($free: Boolean, $holder: String) { gpus(free: $free, holder: $holder) "
        "{ totalCount edges { node { serial } } } }"
    )

    async def serials(**variables) -> list[str]:
        found = await api.data(query, variables, token=people["mira"])
        return [edge["node"]["serial"] for edge in found["gpus"]["edges"]]

    assert await serials(free=True) == ["G2"]
    assert await serials(free=False) == ["G0", "G1"]
    assert await serials(holder="mira") == ["G0"]
    assert await serials(holder="nobody") == []

    for bad in (later(days=-1), later(days=400)):
        code, error = await api.error(
            CLAIM, {"id": cards[2]["id"], "due": bad}, token=people["mira"]
        )
        assert (code, error["extensions"]["field"]) == ("BAD_USER_INPUT", "dueBack")
    assert await serials(free=True) == ["G2"]


async def test_releasing_a_free_gpu_is_not_found(api, people):
    card = await gpu(api, people["admin"], serial="G1", model="L40S")
    code, _ = await api.error(RELEASE, {"id": card["id"]}, token=people["mira"])
    assert code == "NOT_FOUND"


async def test_admins_assign_a_gpu_and_the_assignee_is_told(api, app, people, settings):
    card = await gpu(api, people["admin"], serial="G1", model="A100")
    code, _ = await api.error(ASSIGN, {"id": card["id"], "user": "noor"}, token=people["mira"])
    assert code == "FORBIDDEN"
    code, error = await api.error(
        ASSIGN, {"id": card["id"], "user": "ghost"}, token=people["admin"]
    )
    assert (code, error["extensions"]["field"]) == ("BAD_USER_INPUT", "username")

    given = await api.data(
        ASSIGN, {"id": card["id"], "user": "noor", "due": later(days=7)}, token=people["admin"]
    )
    assert given["assignGpu"]["holder"] == {"username": "noor"}
    code, error = await api.error(CLAIM, {"id": card["id"]}, token=people["mira"])
    assert code == "CONFLICT" and error["extensions"]["holder"]["username"] == "noor"
    code, _ = await api.error(ASSIGN, {"id": card["id"], "user": "mira"}, token=people["admin"])
    assert code == "CONFLICT"  # someone holds it: force-release it first

    [event] = (await api.data(HISTORY, {"gpu": card["id"]}, token=people["noor"]))["gpuHistory"]
    assert (event["kind"], event["actor"], event["gpu"]["holder"]) == (
        "ASSIGNED",
        {"username": "admin"},
        {"username": "noor"},
    )
    await app.state.services.notifier.mail_about_events()
    [mail] = await outbox(settings.database_url)
    assert (mail.to_address, mail.kind) == ("noor@example.com", "gpu-assigned")
    entries = await api.data(
        '{ auditLog(resourceType: "gpu") { edges { node { action changes actor { username } } '
        "} } }",
        token=people["admin"],
    )
    actions = [edge["node"] for edge in entries["auditLog"]["edges"]]
    assign = next(entry for entry in actions if entry["action"] == "assign")
    assert assign["changes"]["holder"] == [None, "noor"]


async def test_an_overdue_hold_mails_its_holder_once(api, app, people, settings):
    card = await gpu(api, people["admin"], serial="G1", model="A100")
    other = await gpu(api, people["admin"], serial="G2", model="A100")
    await api.data(CLAIM, {"id": card["id"], "due": later(hours=1)}, token=people["mira"])
    await api.data(CLAIM, {"id": other["id"], "due": later(hours=1)}, token=people["noor"])
    db = app.state.db
    async with db.transaction() as session:
        await session.execute(
            update(GpuHold)
            .where(GpuHold.gpu_id == int(card["id"]))
            .values(due_back=datetime.now(UTC) - timedelta(minutes=5))
        )
    gpus = app.state.services.gpus
    assert await gpus.remind_overdue() == 1
    assert await gpus.remind_overdue() == 0
    overdue = [m for m in await outbox(settings.database_url) if m.kind == "gpu-overdue"]
    assert [(m.to_address, m.subject) for m in overdue] == [
        ("mira@example.com", "The GPU G1 is overdue")
    ]


async def test_history_of_one_gpu_and_of_one_user(api, people):
    first = await gpu(api, people["admin"], serial="G1", model="A100")
    second = await gpu(api, people["admin"], serial="G2", model="A100")
    await api.data(CLAIM, {"id": first["id"]}, token=people["mira"])
    await api.data(CLAIM, {"id": second["id"]}, token=people["noor"])
    await api.data(RELEASE, {"id": first["id"]}, token=people["mira"])
    await api.post(
        'mutation($id: ID!) { requestGpuRelease(id: $id, message: "please") { seq } }',
        {"id": second["id"]},
        token=people["mira"],
    )

    def kinds(events):
        return [(e["kind"], e["gpu"]["serial"]) for e in events]

    of_first = (await api.data(HISTORY, {"gpu": first["id"]}, token=people["noor"]))["gpuHistory"]
    assert kinds(of_first) == [("CLAIMED", "G1"), ("RELEASED", "G1")]
    of_noor = (await api.data(HISTORY, {"user": "noor"}, token=people["mira"]))["gpuHistory"]
    assert kinds(of_noor) == [("CLAIMED", "G2"), ("RELEASE_REQUESTED", "G2")]
    of_mira = (await api.data(HISTORY, {"user": "mira"}, token=people["mira"]))["gpuHistory"]
    assert kinds(of_mira) == [
        ("CLAIMED", "G1"),
        ("RELEASED", "G1"),
        ("RELEASE_REQUESTED", "G2"),
    ]
    seqs = [e["seq"] for e in (await api.data(HISTORY, {}, token=people["mira"]))["gpuHistory"]]
    assert seqs == [1, 2, 3, 4]


async def test_a_deleted_gpu_is_released_first_and_its_history_stays(api, people):
    card = await gpu(api, people["admin"], serial="G1", model="A100")
    await api.data(CLAIM, {"id": card["id"]}, token=people["mira"])
    deleted = await api.data(
        "mutation($id: ID!) { deleteGpu(id: $id) { serial holder { username } } }",
        {"id": card["id"]},
        token=people["admin"],
    )
    assert deleted["deleteGpu"] == {"serial": "G1", "holder": {"username": "mira"}}
    events = (await api.data(HISTORY, {"gpu": card["id"]}, token=people["mira"]))["gpuHistory"]
    assert [(e["kind"], e["gpu"]["serial"]) for e in events] == [
        ("CLAIMED", "G1"),
        ("FORCE_RELEASED", "G1"),
    ]


async def test_old_events_are_dropped_and_an_older_since_is_told_to_refetch(api, app, people):
    card = await gpu(api, people["admin"], serial="G1", model="A100")
    await api.data(CLAIM, {"id": card["id"]}, token=people["mira"])
    await api.data(RELEASE, {"id": card["id"]}, token=people["mira"])
    await api.data(CLAIM, {"id": card["id"]}, token=people["noor"])
    async with app.state.db.transaction() as session:
        await session.execute(
            update(GpuEvent)
            .where(GpuEvent.seq <= 2)
            .values(at=datetime.now(UTC) - timedelta(days=30))
        )
    await app.state.services.gpus.remind_overdue(retention=timedelta(days=7))
    query = "query($s: Long) { gpuHistory(since: $s) { seq kind } }"
    assert (await api.data(query, {"s": 2}, token=people["mira"]))["gpuHistory"] == [
        {"seq": 3, "kind": "CLAIMED"}
    ]
    code, error = await api.error(query, {"s": 1}, token=people["mira"])
    assert (code, error["extensions"]["reason"]) == ("BAD_USER_INPUT", "refetch")
