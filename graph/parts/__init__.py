"""Fabrication parts in the GraphQL schema: the workflow's mutations, lists, stats, the
leaderboard, and the live part events."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import strawberry
from strawberry import UNSET
from strawberry.types import Info

from domain.parts import Parts, PartView
from domain.parts import records as part_records
from domain.streams import Change
from graph.assets.inputs import values_of
from graph.assets.types import Connection
from graph.context import Context, decode_id
from graph.identity import User
from graph.parts.files import PartFile, part_files
from graph.scalars import Long
from graph.shared_events import shared_payload

PartKind = strawberry.enum(part_records.PartKind, name="PartKind")
PartStage = strawberry.enum(part_records.PartStage, name="PartStage")
PartEventKind = strawberry.enum(part_records.PartEventKind, name="PartEventKind")


def _parts(info: Info[Context, None]) -> Parts:
    return info.context.services.parts


@strawberry.type
class HandWorker:
    username: str
    at: datetime = strawberry.field(description="When they claimed the part.")


@strawberry.type
class Part:
    id: strawberry.ID
    short_id: str = strawberry.field(description="Short human id, unique, e.g. P-0042.")
    name: str
    kind: PartKind
    stage: PartStage
    status: str | None
    subsystem: str | None
    material: str | None
    material_thickness: str | None
    quantity: int
    notes: str | None
    onshape_url: str | None
    reviewer: User | None
    claimed_by: User | None
    claimed_at: datetime | None
    completed_at: datetime | None
    completed_incorrectly: bool
    version: int
    _part_id: strawberry.Private[int]

    @classmethod
    def of(cls, view: PartView) -> Part:
        part = view.part
        return cls(
            id=strawberry.ID(str(part.id)),
            short_id=part.short_id,
            name=part.name,
            kind=PartKind(part.kind),
            stage=PartStage(part.stage),
            status=part.status,
            subsystem=part.subsystem,
            material=part.material,
            material_thickness=part.material_thickness,
            quantity=part.quantity,
            notes=part.notes,
            onshape_url=part.onshape_url,
            reviewer=User.of_ref(view.reviewer) if view.reviewer else None,
            claimed_by=User.of_ref(view.claimer) if view.claimer else None,
            claimed_at=view.claim.since if view.claim else None,
            completed_at=part.completed_at,
            completed_incorrectly=part.completed_incorrectly,
            version=part.version,
            _part_id=part.id,
        )

    @strawberry.field(description="Who worked on it by hand, in order: [{user, at}].")
    async def hand_workers(self, info: Info[Context, None]) -> list[HandWorker]:
        workers = (await _parts(info).workers([self._part_id]))[self._part_id]
        return [HandWorker(username=w.username, at=w.at) for w in workers]

    @strawberry.field(description="Uploaded drawings and models, oldest first.")
    async def files(self, info: Info[Context, None]) -> list[PartFile]:
        return await part_files(info, self._part_id)


@strawberry.type
class PartEvent:
    seq: Long
    kind: PartEventKind
    actor: User | None
    holder: User | None = strawberry.field(
        description="Who had the part claimed at this event (for UNCLAIMED: who lost it)."
    )
    message: str | None
    at: datetime
    _change: strawberry.Private[Change]

    @classmethod
    def of(cls, change: Change) -> PartEvent:
        event = change.event
        return cls(
            seq=event.seq,
            kind=PartEventKind(event.kind),
            actor=User.of_ref(change.actor) if change.actor else None,
            holder=User.of_ref(change.holder) if change.holder else None,
            message=event.message,
            at=event.at,
            _change=change,
        )

    @strawberry.field(description="The part as it is now, at the stage this event left it.")
    async def part(self, info: Info[Context, None]) -> Part:
        event, holder = self._change.event, self._change.holder
        view = await _parts(info).get(event.part_id)
        if view is None:  # deleted since
            from db.parts import Part as PartRow

            row = PartRow(
                id=event.part_id,
                short_id=event.short_id,
                name=event.name,
                kind=event.stage if event.stage in ("CNC", "HAND", "MISC") else "MISC",
                stage=event.stage,
                quantity=1,
                completed_incorrectly=False,
                version=0,
            )
            view = PartView(row, None, holder, None)
        found = Part.of(view)
        found.stage = PartStage(event.stage)
        return found


@strawberry.type
class StageCount:
    stage: PartStage
    count: int


@strawberry.type
class SubsystemCount:
    subsystem: str | None
    stage: PartStage
    count: int


@strawberry.type
class WeekCount:
    week_start: datetime = strawberry.field(description="Monday 00:00 UTC.")
    completed: int


@strawberry.type
class PartStats:
    by_stage: list[StageCount]
    by_subsystem: list[SubsystemCount]
    throughput: list[WeekCount] = strawberry.field(description="Parts completed per week.")


@strawberry.type
class LeaderboardEntry:
    user: User
    score: float


@strawberry.input
class CreatePartInput:
    name: str
    kind: PartKind
    subsystem: str | None = UNSET
    material: str | None = UNSET
    quantity: int | None = UNSET
    notes: str | None = UNSET
    onshape_url: str | None = UNSET
    material_thickness: str | None = UNSET


@strawberry.input
class UpdatePartInput:
    name: str | None = UNSET
    kind: PartKind | None = UNSET
    subsystem: str | None = UNSET
    material: str | None = UNSET
    material_thickness: str | None = UNSET
    quantity: int | None = UNSET
    notes: str | None = UNSET
    onshape_url: str | None = UNSET
    status: str | None = UNSET
    completed_incorrectly: bool | None = UNSET
    version: int | None = strawberry.field(
        default=UNSET, description="The version you read: CONFLICT if the part has changed."
    )


@strawberry.type
class PartQuery:
    @strawberry.field(
        description="Parts, filtered; search matches name, notes, subsystem, claimer, "
        "material and short id. In short-id order."
    )
    async def parts(
        self,
        info: Info[Context, None],
        stage: PartStage | None = None,
        kind: PartKind | None = None,
        search: str | None = None,
        claimed_by: str | None = None,
        first: int | None = None,
        after: str | None = None,
        subsystem: str | None = None,
        newest_first: bool | None = None,
    ) -> Connection[Part]:
        await info.context.require_viewer()
        page = await _parts(info).list(
            stage=None if stage is None else stage.value,
            kind=None if kind is None else kind.value,
            subsystem=subsystem,
            claimed_by=claimed_by,
            text=search,
            sort="NEWEST" if newest_first else "NUMBER",
            first=first,
            after=after,
        )
        return Connection.of(page, Part.of)

    @strawberry.field
    async def part(self, info: Info[Context, None], id: strawberry.ID) -> Part | None:
        await info.context.require_viewer()
        view = await _parts(info).get(decode_id(id))
        return None if view is None else Part.of(view)

    @strawberry.field(
        description="Scored as the original tracker did: each part's current claimer +1 (-2 "
        "if completed incorrectly), each earlier hand worker +0.5. Best first."
    )
    async def part_leaderboard(self, info: Info[Context, None]) -> list[LeaderboardEntry]:
        await info.context.require_viewer()
        return [
            LeaderboardEntry(user=User.of_ref(user), score=score)
            for user, score in await _parts(info).leaderboard()
        ]

    @strawberry.field(description="Counts per stage and subsystem, and completions per week.")
    async def part_stats(self, info: Info[Context, None], weeks: int | None = 12) -> PartStats:
        await info.context.require_viewer()
        stats = await _parts(info).stats(12 if weeks is None else weeks)
        return PartStats(
            by_stage=[
                StageCount(stage=PartStage(stage), count=count)
                for stage, count in sorted(stats.by_stage.items())
            ],
            by_subsystem=[
                SubsystemCount(subsystem=subsystem, stage=PartStage(stage), count=count)
                for subsystem, stage, count in stats.by_subsystem
            ],
            throughput=[WeekCount(week_start=at, completed=n) for at, n in stats.weekly],
        )

    @strawberry.field(description="Stored part events with seq > since, oldest first.")
    async def part_history(
        self, info: Info[Context, None], since: Long | None = None, first: int | None = None
    ) -> list[PartEvent]:
        await info.context.require_viewer()
        return [PartEvent.of(change) for change in await _parts(info).history(since, first)]


def _values(given: Any) -> dict[str, Any]:
    return values_of(given)


@strawberry.type
class PartMutation:
    @strawberry.mutation(description="Anyone signed in; the part starts in REVIEW.")
    async def create_part(self, info: Info[Context, None], input: CreatePartInput) -> Part:
        actor = await info.context.require_viewer()
        return Part.of(await _parts(info).create(actor, _values(input)))

    @strawberry.mutation(description="Reviewers and admins.")
    async def update_part(
        self, info: Info[Context, None], id: strawberry.ID, input: UpdatePartInput
    ) -> Part:
        actor = await info.context.require_viewer()
        values = _values(input)
        version = values.pop("version", None)
        return Part.of(await _parts(info).update(actor, decode_id(id), values, version))

    @strawberry.mutation(description="Reviewers: REVIEW → the stage of the part's kind.")
    async def approve_part(self, info: Info[Context, None], id: strawberry.ID) -> Part:
        actor = await info.context.require_viewer()
        return Part.of(await _parts(info).approve(actor, decode_id(id)))

    @strawberry.mutation(
        description="A free, approved part for yourself; CONFLICT naming the holder when taken."
    )
    async def claim_part(self, info: Info[Context, None], id: strawberry.ID) -> Part:
        actor = await info.context.require_viewer()
        return Part.of(await _parts(info).claim(actor, decode_id(id)))

    @strawberry.mutation(description="The claimer or an admin.")
    async def unclaim_part(self, info: Info[Context, None], id: strawberry.ID) -> Part:
        actor = await info.context.require_viewer()
        return Part.of(await _parts(info).unclaim(actor, decode_id(id)))

    @strawberry.mutation(description="The claimer or an admin: → COMPLETED.")
    async def complete_part(self, info: Info[Context, None], id: strawberry.ID) -> Part:
        actor = await info.context.require_viewer()
        return Part.of(await _parts(info).complete(actor, decode_id(id)))

    @strawberry.mutation(description="Reviewers: COMPLETED → the stage of the part's kind.")
    async def revert_part(self, info: Info[Context, None], id: strawberry.ID) -> Part:
        actor = await info.context.require_viewer()
        return Part.of(await _parts(info).revert(actor, decode_id(id)))

    @strawberry.mutation(description="Ask the claimer to give the part up (they are told).")
    async def request_part_release(
        self, info: Info[Context, None], id: strawberry.ID, message: str | None = None
    ) -> PartEvent:
        actor = await info.context.require_viewer()
        return PartEvent.of(await _parts(info).request_release(actor, decode_id(id), message))

    @strawberry.mutation(
        description='Admins. More than one part needs confirm: "delete <n> parts".'
    )
    async def delete_parts(
        self, info: Info[Context, None], ids: list[strawberry.ID], confirm: str | None = None
    ) -> list[Part]:
        actor = await info.context.require_viewer()
        part_ids = [decode_id(value, "ids") for value in ids]
        return [Part.of(view) for view in await _parts(info).delete(actor, part_ids, confirm)]


@strawberry.type
class PartSubscription:
    @strawberry.subscription(description="Live part changes, resumable like lockEvents.")
    async def part_events(
        self, info: Info[Context, None], since: Long | None = None
    ) -> AsyncGenerator[PartEvent, None]:
        await info.context.require_viewer()
        parts = _parts(info)
        changes = parts.follow(
            await parts.stream_id(),
            since=since,
            **info.context.live_options(),
        )
        try:
            async for change in changes:
                yield shared_payload(change, PartEvent.of)
        finally:
            await changes.aclose()
