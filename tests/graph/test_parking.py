"""Parking through the API: lots (admins; growing, shrinking, deactivating), park now (lowest
free spot, atomically over two replicas), leave (cost in whole hours, rounded up), reserve
ahead (no overlap, by the database too), cancel, live availability with since, history and the
monthly summary; wrong role and bad input leave nothing behind."""

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from db.audit import AuditEntry
from db.engine import Database
from db.parking import ParkingLot, SpotBooking
from tests.conftest import start_server, stop_server
from tests.support.factories import users
from tests.support.graphql import GraphQL, Subscription
from tests.support.parking import (
    CANCEL,
    LEAVE,
    LOT,
    RESERVE,
    UPDATE_LOT,
    lot,
    park,
)
from tests.support.parking import (
    settings as parking_settings,
)


@pytest.fixture
async def people(api):
    return await users(api, "mira", "noor", "omar")


async def rows(database_url: str, query):
    db = Database(database_url)
    try:
        async with db.read() as session:
            return list((await session.execute(query)).all())
    finally:
        await db.dispose()


async def execute(database_url: str, statement) -> None:
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            await session.execute(statement)
    finally:
        await db.dispose()


def code(answer: dict) -> str:
    return answer["errors"][0]["extensions"]["code"]


def later(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


# -- lots -------------------------------------------------------------------------------------


async def test_admins_create_lots_and_bad_input_or_the_wrong_role_leave_nothing(
    api, people, settings
):
    made = await lot(api, people["admin"], pricePerHour="2.50", spotCount=4)
    assert (made["pricePerHour"], made["spotCount"], made["free"]) == ("2.50", 4, 4)
    assert (made["occupied"], made["reserved"], made["active"]) == (0, 0, True)

    create = "mutation($i: CreateParkingLotInput!) { createParkingLot(input: $i) { id } }"
    good = {"name": "South", "pricePerHour": "1", "spotCount": 2}
    assert code(await api.post(create, {"i": good}, token=people["mira"])) == "FORBIDDEN"
    assert code(await api.post(create, {"i": good})) == "UNAUTHENTICATED"
    for bad in (
        {"pricePerHour": "-1"},
        {"pricePerHour": "1.005"},
        {"spotCount": 0},
        {"spotCount": 100_001},
        {"name": "  "},
        {"opensAt": "08:00:00"},
        {"opensAt": "18:00:00", "closesAt": "08:00:00"},
        {"timeZone": "Mars/Olympus"},
    ):
        answer = await api.post(create, {"i": {**good, **bad}}, token=people["admin"])
        assert code(answer) == "BAD_USER_INPUT", (bad, answer)
    lots = await rows(settings.database_url, select(ParkingLot.name, ParkingLot.price_per_hour))
    assert lots == [("North", Decimal("2.50"))]
    entries = await rows(
        settings.database_url,
        select(AuditEntry.action).where(AuditEntry.resource_type == "parking_lot"),
    )
    assert entries == [("create",)]


async def test_growing_adds_spots_and_shrinking_refuses_naming_the_spots_in_use(
    api, people, settings
):
    made = await lot(api, people["admin"], spotCount=3)
    for name, spot in (("mira", 2), ("noor", 3)):
        assert "errors" not in await park(api, people[name], made["id"], spot=spot)
    refused = await api.post(
        UPDATE_LOT, {"id": made["id"], "input": {"spotCount": 1}}, token=people["admin"]
    )
    assert code(refused) == "CONFLICT" and refused["errors"][0]["extensions"]["spots"] == [2, 3]
    assert "2, 3" in refused["errors"][0]["message"]
    deactivate = await api.post(
        UPDATE_LOT, {"id": made["id"], "input": {"active": False}}, token=people["admin"]
    )
    assert code(deactivate) == "CONFLICT"
    wrong = await api.post(
        UPDATE_LOT, {"id": made["id"], "input": {"spotCount": 5}}, token=people["mira"]
    )
    assert code(wrong) == "FORBIDDEN"
    current = (await api.data(LOT, {"id": made["id"]}, token=people["mira"]))["parkingLot"]
    assert (current["spotCount"], current["active"], current["occupied"]) == (3, True, 2)

    grown = await api.data(
        UPDATE_LOT, {"id": made["id"], "input": {"spotCount": 5}}, token=people["admin"]
    )
    assert grown["updateParkingLot"]["free"] == 3
    shrunk = await api.data(
        UPDATE_LOT, {"id": made["id"], "input": {"spotCount": 3}}, token=people["admin"]
    )
    assert (shrunk["updateParkingLot"]["spotCount"], shrunk["updateParkingLot"]["free"]) == (3, 1)
    delete = "mutation($id: ID!) { deleteParkingLot(id: $id) { id } }"
    assert code(await api.post(delete, {"id": made["id"]}, token=people["admin"])) == "CONFLICT"


# -- park, leave ------------------------------------------------------------------------------


async def test_park_takes_the_lowest_free_spot_one_per_user_with_the_vehicle_normalised(
    api, people, settings
):
    made = await lot(api, people["admin"], spotCount=3)
    first = await park(api, people["mira"], made["id"], vehicle="ab-12 cd")
    booking = first["data"]["park"]
    assert (booking["spot"]["number"], booking["vehicleNumber"], booking["status"]) == (
        1,
        "AB12CD",
        "PARKED",
    )
    assert booking["rate"] == "2.50" and booking["cost"] is None
    second = await park(api, people["noor"], made["id"])
    assert second["data"]["park"]["spot"]["number"] == 2

    other = await lot(api, people["admin"], name="South")
    limit = await park(api, people["mira"], other["id"])
    assert code(limit) == "CONFLICT" and "at most 1" in limit["errors"][0]["message"]
    for bad in ("A", "TOO-LONG-PLATE-1", "ÄB12", ""):
        answer = await park(api, people["omar"], made["id"], vehicle=bad)
        assert code(answer) == "BAD_USER_INPUT", bad
    assert code(await park(api, people["omar"], "999999")) == "NOT_FOUND"
    assert code(await park(api, people["omar"], "lot")) == "BAD_USER_INPUT"
    parked = await rows(
        settings.database_url,
        select(SpotBooking.spot_number).where(SpotBooking.status == "PARKED"),
    )
    assert sorted(parked) == [(1,), (2,)]

    await parking_settings(api, people["admin"], maxActiveParkingsPerUser=2)
    assert "errors" not in await park(api, people["mira"], other["id"])


@pytest.mark.parametrize(("minutes", "hours"), [(59, 1), (60, 1), (61, 2), (0, 1), (185, 4)])
async def test_leaving_costs_the_rate_times_whole_hours_rounded_up(
    api, people, settings, minutes, hours
):
    made = await lot(api, people["admin"], pricePerHour="2.35")
    booking = (await park(api, people["mira"], made["id"]))["data"]["park"]
    parked_at = datetime.now(UTC) - timedelta(minutes=minutes, seconds=-1 if minutes else 0)
    await execute(
        settings.database_url,
        update(SpotBooking).where(SpotBooking.id == int(booking["id"])).values(parked_at=parked_at),
    )
    forbidden = await api.post(LEAVE, {"id": booking["id"]}, token=people["noor"])
    assert code(forbidden) == "FORBIDDEN"
    left = (await api.data(LEAVE, {"id": booking["id"]}, token=people["mira"]))["leave"]
    assert left["status"] == "COMPLETED"
    assert Decimal(left["cost"]) == Decimal("2.35") * hours
    [(stored,)] = await rows(settings.database_url, select(SpotBooking.cost))
    assert stored == Decimal("2.35") * hours and isinstance(stored, Decimal)
    again = await api.post(LEAVE, {"id": booking["id"]}, token=people["mira"])
    assert code(again) == "BAD_USER_INPUT"
    assert (await api.data(LOT, {"id": made["id"]}, token=people["mira"]))["parkingLot"][
        "free"
    ] == 3


async def test_fifty_users_racing_for_the_last_three_spots_over_two_replicas(
    settings, shared_redis_url, tmp_path
):
    shared = settings.replace(redis_url=shared_redis_url)
    replicas = [start_server(shared, tmp_path / f"{name}.log") for name in "ab"]
    try:
        clients = [GraphQL(replica.url) for replica in replicas]
        names = [f"driver{index}" for index in range(50)]
        people = await users(clients[0], "early1", "early2", *names)
        made = await lot(clients[0], people["admin"], spotCount=5)
        for name in ("early1", "early2"):
            assert "errors" not in await park(clients[0], people[name], made["id"])
        answers = await asyncio.gather(
            *(
                park(clients[index % 2], people[name], made["id"], vehicle=f"R{index:03d}")
                for index, name in enumerate(names)
            )
        )
        won = [answer for answer in answers if "errors" not in answer]
        assert len(won) == 3, answers
        assert sorted(answer["data"]["park"]["spot"]["number"] for answer in won) == [3, 4, 5]
        for answer in answers:
            if "errors" in answer:
                assert code(answer) == "CONFLICT"
                assert answer["errors"][0]["message"].startswith("lot full")
        parked = await rows(
            settings.database_url,
            select(func.count()).select_from(SpotBooking).where(SpotBooking.status == "PARKED"),
        )
        assert parked == [(5,)]
        for client in clients:
            await client.close()
    finally:
        for replica in replicas:
            stop_server(replica)


# -- reservations ---------------------------------------------------------------------------


async def test_reservations_never_overlap_and_racing_ones_have_one_winner(api, people, settings):
    made = await lot(api, people["admin"], spotCount=1)
    window = {"lot": made["id"], "from": later(2), "until": later(4), "v": "RES1"}
    racers = await users(api, *(f"racer{index}" for index in range(8)))
    answers = await asyncio.gather(
        *(api.post(RESERVE, window, token=racers[f"racer{index}"]) for index in range(8))
    )
    won = [answer for answer in answers if "errors" not in answer]
    assert len(won) == 1, answers
    assert all(code(a) == "CONFLICT" for a in answers if "errors" in a)
    overlapping = {**window, "from": later(3), "until": later(5)}
    assert code(await api.post(RESERVE, overlapping, token=people["mira"])) == "CONFLICT"
    after = {**window, "from": later(4), "until": later(5)}
    assert "errors" not in await api.post(RESERVE, after, token=people["mira"])
    # Parking now is open-ended: the one spot is reserved later, so the lot is full now.
    assert code(await park(api, people["noor"], made["id"])) == "CONFLICT"
    lot_now = (await api.data(LOT, {"id": made["id"]}, token=people["mira"]))["parkingLot"]
    assert (lot_now["free"], lot_now["reserved"]) == (0, 1)

    for bad in (
        {"from": later(-1)},
        {"until": later(1)},
        {"until": later(24 * 8)},
        {"v": "!"},
        {"from": "2030-01-01T10:00:00"},
    ):
        answer = await api.post(RESERVE, {**window, **bad}, token=people["omar"])
        assert code(answer) == "BAD_USER_INPUT", (bad, answer)
    assert len(await rows(settings.database_url, select(SpotBooking.id))) == 2


async def test_the_database_refuses_overlapping_windows_whatever_the_code(api, people, settings):
    """Two transactions writing overlapping bookings of one spot, around the application: the
    exclusion constraint (PostgreSQL) or the trigger (SQLite) refuses one."""
    made = await lot(api, people["admin"], spotCount=1)
    reserved = (
        await api.data(
            RESERVE,
            {"lot": made["id"], "from": later(2), "until": later(4), "v": "AB12"},
            token=people["mira"],
        )
    )["reserveSpot"]
    [(spot_id, user_id)] = await rows(
        settings.database_url, select(SpotBooking.spot_id, SpotBooking.user_id)
    )
    start = datetime.now(UTC) + timedelta(hours=3)

    async def insert(offset: int) -> str:
        db = Database(settings.database_url)
        try:
            async with db.transaction() as session:
                session.add(
                    SpotBooking(
                        lot_id=int(made["id"]),
                        spot_id=spot_id,
                        spot_number=1,
                        user_id=user_id,
                        vehicle_number="XY99",
                        status="RESERVED",
                        starts_at=start + timedelta(minutes=offset),
                        ends_at=start + timedelta(hours=2),
                        rate=Decimal("1.00"),
                    )
                )
            return "written"
        except (IntegrityError, DBAPIError):
            return "refused"
        finally:
            await db.dispose()

    assert await asyncio.gather(insert(0), insert(30)) == ["refused", "refused"]
    await api.data(CANCEL, {"id": reserved["id"]}, token=people["mira"])
    results = await asyncio.gather(insert(0), insert(30))
    assert sorted(results) == ["refused", "written"]


async def test_cancel_before_the_start_only_by_the_holder(api, people, settings):
    made = await lot(api, people["admin"])
    booking = (
        await api.data(
            RESERVE,
            {"lot": made["id"], "from": later(1), "until": later(2), "v": "AB12"},
            token=people["mira"],
        )
    )["reserveSpot"]
    assert booking["status"] == "RESERVED" and booking["reservedFrom"]
    assert code(await api.post(CANCEL, {"id": booking["id"]}, token=people["noor"])) == (
        "FORBIDDEN"
    )
    assert code(await api.post(CANCEL, {"id": "0"}, token=people["mira"])) == "BAD_USER_INPUT"
    cancelled = await api.data(CANCEL, {"id": booking["id"]}, token=people["mira"])
    assert cancelled["cancelSpotBooking"]["status"] == "CANCELLED"
    assert code(await api.post(CANCEL, {"id": booking["id"]}, token=people["mira"])) == (
        "BAD_USER_INPUT"
    )
    started = (
        await api.data(
            RESERVE,
            {"lot": made["id"], "from": later(1), "until": later(2), "v": "AB12"},
            token=people["mira"],
        )
    )["reserveSpot"]
    await execute(
        settings.database_url,
        update(SpotBooking)
        .where(SpotBooking.id == int(started["id"]))
        .values(starts_at=datetime.now(UTC) - timedelta(minutes=1)),
    )
    assert code(await api.post(CANCEL, {"id": started["id"]}, token=people["mira"])) == (
        "BAD_USER_INPUT"
    )
    # During its window, parking uses the reservation's spot.
    parked = (await park(api, people["mira"], made["id"]))["data"]["park"]
    assert (parked["id"], parked["status"]) == (started["id"], "PARKED")


async def test_opening_hours_bound_reservations(api, people):
    made = await lot(api, people["admin"], opensAt="08:00:00", closesAt="18:00:00")
    day = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    inside = {
        "lot": made["id"],
        "from": day.replace(hour=9).isoformat(),
        "until": day.replace(hour=17).isoformat(),
        "v": "AB12",
    }
    assert "errors" not in await api.post(RESERVE, inside, token=people["mira"])
    outside = {**inside, "from": day.replace(hour=7).isoformat()}
    assert code(await api.post(RESERVE, outside, token=people["noor"])) == "BAD_USER_INPUT"
    late = {**inside, "until": day.replace(hour=19).isoformat()}
    assert code(await api.post(RESERVE, late, token=people["noor"])) == "BAD_USER_INPUT"


# -- live availability, history ---------------------------------------------------------------


async def test_availability_is_live_and_since_replays_with_the_counts_after_each_change(
    settings, tmp_path
):
    server = start_server(settings, tmp_path / "server.log")
    try:
        async with GraphQL(server.url) as api:
            people = await users(api, "mira", "noor")
            made = await lot(api, people["admin"], spotCount=2)
            mira = (await park(api, people["mira"], made["id"]))["data"]["park"]
            query = (
                "subscription($l: ID!, $s: Long) { lotAvailability(lotId: $l, since: $s) "
                "{ seq kind lot { free occupied reserved } } }"
            )
            live = Subscription(server.ws_url, people["noor"], {"l": made["id"], "s": 1}, query)
            async with live:
                await live.wait_for(1)
                await park(api, people["noor"], made["id"])
                await api.data(LEAVE, {"id": mira["id"]}, token=people["mira"])
                await live.wait_for(3)
                await asyncio.sleep(0.3)
            assert live.seqs == [2, 3, 4]
            assert [(e["kind"], e["lot"]["free"], e["lot"]["occupied"]) for e in live.events] == [
                ("PARKED", 1, 1),
                ("PARKED", 0, 2),
                ("LEFT", 1, 1),
            ]
            history = await api.data(
                "query($l: ID!) { lotHistory(lotId: $l, since: 1) { seq kind } }",
                {"l": made["id"]},
                token=people["noor"],
            )
            assert [event["seq"] for event in history["lotHistory"]] == live.seqs
    finally:
        stop_server(server)


async def test_history_own_and_for_admins_with_filters_and_the_monthly_summary(
    api, people, settings
):
    made = await lot(api, people["admin"], pricePerHour="3.00")
    booking = (await park(api, people["mira"], made["id"]))["data"]["park"]
    await api.data(LEAVE, {"id": booking["id"]}, token=people["mira"])
    await park(api, people["noor"], made["id"])
    mine = await api.data(
        "{ mySpotBookings { totalCount edges { node { id status cost } } } }",
        token=people["mira"],
    )
    assert mine["mySpotBookings"]["totalCount"] == 1
    assert mine["mySpotBookings"]["edges"][0]["node"]["cost"] == "3.00"

    query = (
        "query($l: ID, $u: String, $s: SpotBookingStatus) { spotBookings(lotId: $l, "
        "username: $u, status: $s) { totalCount edges { node { user { username } } } } }"
    )
    assert code(await api.post(query, {}, token=people["mira"])) == "FORBIDDEN"
    everyone = await api.data(query, {"l": made["id"]}, token=people["admin"])
    assert everyone["spotBookings"]["totalCount"] == 2
    parked = await api.data(query, {"s": "PARKED"}, token=people["admin"])
    assert [e["node"]["user"]["username"] for e in parked["spotBookings"]["edges"]] == ["noor"]
    noor = await api.data(query, {"u": "noor"}, token=people["admin"])
    assert noor["spotBookings"]["totalCount"] == 1

    month = datetime.now(UTC).strftime("%Y-%m")
    summary = await api.data(
        "query($m: String!) { parkingSummary(month: $m) { lot { name } month stays revenue "
        "occupancy } }",
        {"m": month},
        token=people["admin"],
    )
    [line] = summary["parkingSummary"]
    assert (line["lot"]["name"], line["stays"], line["revenue"]) == ("North", 2, "3.00")
    bad = await api.post(
        'query { parkingSummary(month: "2026-13") { month } }', token=people["admin"]
    )
    assert code(bad) == "BAD_USER_INPUT"
