"""Each area's holds as the hold contract test (tests/test_hold_contract.py) drives them.

An area adds one `HoldArea` here: how to make a thing to hold, take it, give it back, force it,
ask for it, read its history and follow it live, and what its event kinds are called. The
contract — one winner, a conflict naming the holder, the holder told, `since` with no gap and
no duplicate, bad input refused with nothing changed — is written once, for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from db.assets import GpuHold
from db.engine import Database
from db.identity import User
from db.locks import Lock
from db.parking import SpotBooking
from db.parts import PartClaim
from tests.support.assets import gpu
from tests.support.graphql import GraphQL
from tests.support.parking import lot as parking_lot
from tests.support.parking import settings as parking_settings
from tests.support.parts import approved_part


@dataclass(frozen=True)
class Kinds:
    taken: str
    released: str
    forced: str
    asked: str


class HoldArea:
    name: str
    kinds: Kinds
    history_field: str
    events_field: str

    async def target(self, api: GraphQL, admin: str, index: int = 0) -> str:
        """A thing to hold, made as the admin; returns how requests name it."""
        raise NotImplementedError

    async def take(self, api: GraphQL, token: str, target: str) -> dict:
        raise NotImplementedError

    async def release(self, api: GraphQL, token: str, target: str, force: bool = False) -> dict:
        raise NotImplementedError

    async def ask(self, api: GraphQL, token: str, target: str, message: str) -> dict:
        raise NotImplementedError

    async def history(self, api: GraphQL, token: str, since: int | None = None) -> list[dict]:
        raise NotImplementedError

    def live(self, since: int | None) -> tuple[str, dict]:
        """The subscription document and variables that follow this area's stream."""
        raise NotImplementedError

    def holder_named(self, error: dict) -> str:
        """The holder a CONFLICT names in its extensions."""
        raise NotImplementedError

    def holder_of(self, event: dict) -> str:
        raise NotImplementedError

    async def held(self, database_url: str) -> dict[str, str]:
        """What the database holds: target → holder's username."""
        raise NotImplementedError

    bad_targets: tuple[tuple[str, str], ...] = ()
    """(target, code) pairs that must be refused, changing nothing."""


EVENT = "seq kind actor { username } message"


class LockArea(HoldArea):
    name = "locks"
    kinds = Kinds("ACQUIRED", "RELEASED", "FORCE_RELEASED", "RELEASE_REQUESTED")
    history_field = "lockHistory"
    events_field = "lockEvents"
    bad_targets = (
        ("../outside.uasset", "BAD_USER_INPUT"),
        ("/absolute.uasset", "BAD_USER_INPUT"),
        ("Content/\u0000.uasset", "BAD_USER_INPUT"),
    )

    async def target(self, api: GraphQL, admin: str, index: int = 0) -> str:
        return f"Content/Contract/Thing{index}.uasset"

    async def take(self, api: GraphQL, token: str, target: str) -> dict:
        return await api.post(
            'mutation($p: String!) { acquireLock(project: "default", path: $p) '
            "{ path owner { username } } }",
            {"p": target},
            token=token,
        )

    async def release(self, api: GraphQL, token: str, target: str, force: bool = False) -> dict:
        return await api.post(
            'mutation($p: String!, $f: Boolean) { releaseLock(project: "default", path: $p, '
            "force: $f) { path owner { username } } }",
            {"p": target, "f": force},
            token=token,
        )

    async def ask(self, api: GraphQL, token: str, target: str, message: str) -> dict:
        return await api.post(
            'mutation($p: String!, $m: String) { requestLockRelease(project: "default", '
            f"path: $p, message: $m) {{ {EVENT} lock {{ owner {{ username }} }} }} }}",
            {"p": target, "m": message},
            token=token,
        )

    async def history(self, api: GraphQL, token: str, since: int | None = None) -> list[dict]:
        data = await api.data(
            'query($s: Long) { lockHistory(project: "default", since: $s) '
            f"{{ {EVENT} lock {{ path owner {{ username }} }} }} }}",
            {"s": since},
            token=token,
        )
        return data["lockHistory"]

    def live(self, since: int | None) -> tuple[str, dict]:
        query = (
            'subscription($s: Long) { lockEvents(project: "default", since: $s) '
            f"{{ {EVENT} lock {{ path owner {{ username }} }} }} }}"
        )
        return query, {"s": since}

    def holder_named(self, error: dict) -> str:
        [holder] = error["extensions"]["holders"]
        return holder["username"]

    def holder_of(self, event: dict) -> str:
        return event["lock"]["owner"]["username"]

    async def held(self, database_url: str) -> dict[str, str]:
        db = Database(database_url)
        try:
            async with db.read() as session:
                rows = await session.execute(
                    select(Lock.path, User.username).join(User, User.id == Lock.owner_id)
                )
                return dict(rows.all())
        finally:
            await db.dispose()


GPU_EVENT = "seq kind actor { username } message gpu { id serial holder { username } }"


class GpuArea(HoldArea):
    name = "gpus"
    kinds = Kinds("CLAIMED", "RELEASED", "FORCE_RELEASED", "RELEASE_REQUESTED")
    history_field = "gpuHistory"
    events_field = "gpuEvents"
    bad_targets = (("0", "BAD_USER_INPUT"), ("gpu-1", "BAD_USER_INPUT"), ("999999", "NOT_FOUND"))

    async def target(self, api: GraphQL, admin: str, index: int = 0) -> str:
        made = await gpu(api, admin, serial=f"CONTRACT-{index}", model="A100")
        return made["id"]

    async def take(self, api: GraphQL, token: str, target: str) -> dict:
        return await api.post(
            "mutation($id: ID!) { claimGpu(id: $id) { id holder { username } } }",
            {"id": target},
            token=token,
        )

    async def release(self, api: GraphQL, token: str, target: str, force: bool = False) -> dict:
        return await api.post(
            "mutation($id: ID!, $f: Boolean) { releaseGpu(id: $id, force: $f) "
            "{ id holder { username } } }",
            {"id": target, "f": force},
            token=token,
        )

    async def ask(self, api: GraphQL, token: str, target: str, message: str) -> dict:
        return await api.post(
            "mutation($id: ID!, $m: String) { requestGpuRelease(id: $id, message: $m) "
            f"{{ {GPU_EVENT} }} }}",
            {"id": target, "m": message},
            token=token,
        )

    async def history(self, api: GraphQL, token: str, since: int | None = None) -> list[dict]:
        data = await api.data(
            f"query($s: Long) {{ gpuHistory(since: $s) {{ {GPU_EVENT} }} }}",
            {"s": since},
            token=token,
        )
        return data["gpuHistory"]

    def live(self, since: int | None) -> tuple[str, dict]:
        return f"subscription($s: Long) {{ gpuEvents(since: $s) {{ {GPU_EVENT} }} }}", {"s": since}

    def holder_named(self, error: dict) -> str:
        return error["extensions"]["holder"]["username"]

    def holder_of(self, event: dict) -> str:
        return event["gpu"]["holder"]["username"]

    async def held(self, database_url: str) -> dict[str, str]:
        db = Database(database_url)
        try:
            async with db.read() as session:
                rows = await session.execute(
                    select(GpuHold.gpu_id, User.username).join(User, User.id == GpuHold.holder_id)
                )
                return {str(gpu_id): username for gpu_id, username in rows.all()}
        finally:
            await db.dispose()


PART_EVENT = "seq kind actor { username } holder { username } message part { id shortId }"


class PartArea(HoldArea):
    name = "parts"
    kinds = Kinds("CLAIMED", "UNCLAIMED", "UNCLAIMED", "RELEASE_REQUESTED")
    history_field = "partHistory"
    events_field = "partEvents"
    bad_targets = (("0", "BAD_USER_INPUT"), ("part-1", "BAD_USER_INPUT"), ("999999", "NOT_FOUND"))

    async def target(self, api: GraphQL, admin: str, index: int = 0) -> str:
        return (await approved_part(api, admin, name=f"Contract {index}"))["id"]

    async def take(self, api: GraphQL, token: str, target: str) -> dict:
        return await api.post(
            "mutation($id: ID!) { claimPart(id: $id) { id claimedBy { username } } }",
            {"id": target},
            token=token,
        )

    async def release(self, api: GraphQL, token: str, target: str, force: bool = False) -> dict:
        """Unclaiming someone else's part needs no flag: only an admin may."""
        return await api.post(
            "mutation($id: ID!) { unclaimPart(id: $id) { id claimedBy { username } } }",
            {"id": target},
            token=token,
        )

    async def ask(self, api: GraphQL, token: str, target: str, message: str) -> dict:
        return await api.post(
            "mutation($id: ID!, $m: String) { requestPartRelease(id: $id, message: $m) "
            f"{{ {PART_EVENT} }} }}",
            {"id": target, "m": message},
            token=token,
        )

    async def history(self, api: GraphQL, token: str, since: int | None = None) -> list[dict]:
        data = await api.data(
            f"query($s: Long) {{ partHistory(since: $s, first: 1000) {{ {PART_EVENT} }} }}",
            {"s": since},
            token=token,
        )
        return [event for event in data["partHistory"] if event["kind"] in self.hold_kinds]

    hold_kinds = ("CLAIMED", "UNCLAIMED", "RELEASE_REQUESTED")
    """The contract follows the claims; creating and approving a target are events too."""

    def live(self, since: int | None) -> tuple[str, dict]:
        return f"subscription($s: Long) {{ partEvents(since: $s) {{ {PART_EVENT} }} }}", {
            "s": since
        }

    def holder_named(self, error: dict) -> str:
        return error["extensions"]["holder"]["username"]

    def holder_of(self, event: dict) -> str:
        return event["holder"]["username"]

    async def held(self, database_url: str) -> dict[str, str]:
        db = Database(database_url)
        try:
            async with db.read() as session:
                rows = await session.execute(
                    select(PartClaim.part_id, User.username).join(
                        User, User.id == PartClaim.holder_id
                    )
                )
                return {str(part_id): username for part_id, username in rows.all()}
        finally:
            await db.dispose()


SPOT_EVENT = "seq kind actor { username } holder { username } message spotNumber"


class SpotArea(HoldArea):
    """A thing is a spot of one contract lot ("<lot id>:<spot number>"), taken by parking in
    it (park with spotNumber) and given back by leaving; the per-user limit is raised so one
    person may hold many. The client remembers the booking each take returned, as a real one
    does (leave and requestSpotRelease name the booking)."""

    name = "spots"
    kinds = Kinds("PARKED", "LEFT", "FORCE_RELEASED", "RELEASE_REQUESTED")
    history_field = "lotHistory"
    events_field = "lotAvailability"
    bad_targets = (
        ("1:0", "BAD_USER_INPUT"),
        ("lot-1:1", "BAD_USER_INPUT"),
        ("999999:1", "NOT_FOUND"),
    )
    hold_kinds = ("PARKED", "LEFT", "FORCE_RELEASED", "RELEASE_REQUESTED")
    LOT_NAME = "Contract lot"

    def __init__(self) -> None:
        self.lot_id: str | None = None
        self.bookings: dict[str, str] = {}

    async def _find_lot(self, api: GraphQL, token: str) -> str | None:
        data = await api.data("{ parkingLots { id name } }", token=token)
        found = [lot["id"] for lot in data["parkingLots"] if lot["name"] == self.LOT_NAME]
        self.lot_id = found[0] if found else None
        return self.lot_id

    async def target(self, api: GraphQL, admin: str, index: int = 0) -> str:
        lot_id = await self._find_lot(api, admin)
        if lot_id is None:
            await parking_settings(api, admin, maxActiveParkingsPerUser=100)
            lot_id = self.lot_id = (
                await parking_lot(api, admin, name=self.LOT_NAME, spotCount=30)
            )["id"]
        return f"{lot_id}:{index + 1}"

    async def take(self, api: GraphQL, token: str, target: str) -> dict:
        lot_id, number = target.split(":")
        answer = await api.post(
            "mutation($lot: ID!, $spot: Int, $v: String!) { park(lotId: $lot, spotNumber: $spot, "
            "vehicleNumber: $v) { id spot { number } user { username } } }",
            {"lot": lot_id, "spot": int(number), "v": f"HF{number}"},
            token=token,
        )
        if "errors" not in answer:
            self.bookings[target] = answer["data"]["park"]["id"]
        return answer

    async def release(self, api: GraphQL, token: str, target: str, force: bool = False) -> dict:
        return await api.post(
            "mutation($id: ID!, $f: Boolean) { leave(bookingId: $id, force: $f) "
            "{ id status user { username } } }",
            {"id": self.bookings[target], "f": force},
            token=token,
        )

    async def ask(self, api: GraphQL, token: str, target: str, message: str) -> dict:
        return await api.post(
            "mutation($id: ID!, $m: String) { requestSpotRelease(bookingId: $id, message: $m) "
            f"{{ {SPOT_EVENT} }} }}",
            {"id": self.bookings[target], "m": message},
            token=token,
        )

    async def history(self, api: GraphQL, token: str, since: int | None = None) -> list[dict]:
        lot_id = await self._find_lot(api, token)
        if lot_id is None:
            return []
        data = await api.data(
            f"query($l: ID!, $s: Long) {{ lotHistory(lotId: $l, since: $s, first: 1000) "
            f"{{ {SPOT_EVENT} }} }}",
            {"l": lot_id, "s": since},
            token=token,
        )
        return [event for event in data["lotHistory"] if event["kind"] in self.hold_kinds]

    def live(self, since: int | None) -> tuple[str, dict]:
        query = (
            "subscription($l: ID!, $s: Long) { lotAvailability(lotId: $l, since: $s) "
            f"{{ {SPOT_EVENT} }} }}"
        )
        return query, {"l": self.lot_id, "s": since}

    def holder_named(self, error: dict) -> str:
        return error["extensions"]["holder"]["username"]

    def holder_of(self, event: dict) -> str:
        return event["holder"]["username"]

    async def held(self, database_url: str) -> dict[str, str]:
        db = Database(database_url)
        try:
            async with db.read() as session:
                rows = await session.execute(
                    select(SpotBooking.lot_id, SpotBooking.spot_number, User.username)
                    .join(User, User.id == SpotBooking.user_id)
                    .where(SpotBooking.status == "PARKED")
                )
                return {f"{lot}:{number}": username for lot, number, username in rows.all()}
        finally:
            await db.dispose()


AREAS = [LockArea(), GpuArea(), PartArea(), SpotArea()]
