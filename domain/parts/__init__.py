"""Fabrication parts: review → make → done, enforced; claims are holds on the engine.

Every write is one transaction on the engine's general path (domain/holds.py): the acting user
key-share locked, then the `parts` stream, so every read under it is current and each change is
one event with the next seq. A claim is a row of `part_claims` (unique per part: a race has one
winner). Each change is audited in the same transaction.

The workflow:
- approve (reviewers): REVIEW → the stage of the part's kind, recording the reviewer;
- claim (anyone signed in): a free, approved part; hand parts log the worker;
- unclaim, complete (the claimer, or an admin): complete moves it to COMPLETED, the claim
  stays (who made it); unclaiming a part whose work began sets its status "already started";
- revert (reviewers): COMPLETED → the stage of its kind.
Anything else is BAD_USER_INPUT naming the current stage.

Reading, stats and the leaderboard are in reads.py; the checks in records.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from db import parts as store
from db.base import utcnow
from db.engine import Database
from db.identity import User
from db.parts import PART_STREAM, Part, PartClaim, PartEvent
from db.streams import create_stream, purge_events_before
from domain import audit
from domain.access import Permission, is_admin, require, require_admin
from domain.errors import BadUserInput, Conflict, Forbidden, NotFound
from domain.holds import Holds, Writer
from domain.mails import part_alert
from domain.notify import Notifier
from domain.parts.reads import PartReads, PartView
from domain.parts.records import (
    MAKING,
    MAX_MESSAGE_LENGTH,
    PART,
    PART_EVENTS,
    STARTED,
    PartEventKind,
    PartStage,
    describe,
    making_stage,
)
from domain.people import UserRef, missing_user, user_refs
from domain.streams import Change

__all__ = ["PART_EVENTS", "PartEventKind", "PartView", "Parts"]


@dataclass
class _Held:
    """The part in a transaction, with its claim and claimer (if any)."""

    part: Part
    claim: PartClaim | None
    claimer: UserRef | None
    releasing: bool = False
    """The step ends the claim (after its event is recorded)."""


def _wrong_stage(part: Part, action: str) -> BadUserInput:
    return BadUserInput(
        f"{part.short_id} is in {part.stage}: it cannot be {action} now",
        field="stage",
        stage=part.stage,
    )


class Parts(PartReads):
    def __init__(self, db: Database, holds: Holds, notifier: Notifier | None = None) -> None:
        self.db = db
        self.holds = holds
        self.notifier = notifier
        self._stream_id: int | None = None
        self.delete_files: Callable[[AsyncSession, list[int]], Awaitable[None]] | None = None
        """Set by part files: remove the files of parts about to be deleted."""
        holds.serve(PART_EVENTS)
        if notifier is not None:
            PART_EVENTS.mail = self.mail
            notifier.mail_on(PART_EVENTS)

    async def stream_id(self) -> int:
        if self._stream_id is None:
            async with self.db.transaction() as session:
                self._stream_id = (await create_stream(session, PART_STREAM)).id
        return self._stream_id

    # -- the general path ------------------------------------------------------------------

    async def _held(self, session: AsyncSession, part_id: int) -> _Held:
        part = await store.get(session, part_id, for_update=True)
        if part is None:
            raise NotFound(f"no part with id {part_id}", field="id")
        claim = await store.claim_of(session, part.id)
        claimer = None
        if claim is not None:
            claimer = (await user_refs(session, {claim.holder_id})).get(
                claim.holder_id
            ) or missing_user(claim.holder_id)
        return _Held(part, claim, claimer)

    def _record(
        self,
        w: Writer,
        held: _Held,
        kind: PartEventKind,
        actor: User,
        *,
        message: str | None = None,
        claim: PartClaim | None = None,
    ) -> Change:
        part = held.part
        hold = claim or held.claim or PartClaim(part_id=part.id)
        return w.record(
            hold,
            kind,
            holder=held.claimer if hold.holder_id is not None else None,
            actor=UserRef.of(actor),
            at=utcnow(),
            message=message,
            given={"short_id": part.short_id, "name": part.name, "stage": part.stage},
        )

    def _audit(self, w: Writer, actor: User, action: str, before, held: _Held) -> None:
        after = describe(held.part, held.claimer.username if held.claimer else None)
        audit.record(
            w.session,
            actor=actor,
            action=action,
            resource_type="part",
            resource_id=held.part.id,
            before=before,
            after=after,
        )

    def _view(self, held: _Held) -> PartView:
        return PartView(held.part, held.claim, held.claimer)

    async def _change(
        self,
        actor: User,
        part_id: int,
        action: str,
        step: Callable[[Writer, _Held], Awaitable[PartEventKind]],
        *,
        message: str | None = None,
    ) -> PartView:
        """Run one workflow step on a part under the stream's lock: its event and its audit
        entry commit with it."""
        async with self.holds.transaction(PART_EVENTS, await self.stream_id(), actor=actor) as w:
            held = await self._held(w.session, part_id)
            before = describe(held.part, held.claimer.username if held.claimer else None)
            kind = await step(w, held)
            await w.session.flush()
            self._record(w, held, kind, actor, message=message)
            if held.releasing:
                await w.session.delete(held.claim)
                held.claim, held.claimer = None, None
            self._audit(w, actor, action, before, held)
        return await self.get(held.part.id)

    # -- create, update, delete -----------------------------------------------------------

    async def create(self, actor: User, values: dict) -> PartView:
        checked = PART.checked(values, creating=True)
        checked.pop("completed_incorrectly", None)
        async with self.holds.transaction(PART_EVENTS, await self.stream_id(), actor=actor) as w:
            number = await store.next_number(w.session)
            part = Part(
                number=number,
                short_id=f"P-{number:04d}",
                stage=PartStage.REVIEW.value,
                created_by_id=actor.id,
                **{"quantity": 1, **{k: v for k, v in checked.items() if v is not None}},
            )
            w.session.add(part)
            await w.session.flush()
            held = _Held(part, None, None)
            self._record(w, held, PartEventKind.CREATED, actor)
            self._audit(w, actor, "create", None, held)
        return await self.get(held.part.id)

    async def update(
        self, actor: User, part_id: int, values: dict, version: int | None = None
    ) -> PartView:
        """Reviewers (and admins) change a part's fields; its kind only while in review, the
        incorrectly-completed flag only once completed."""
        require(actor, Permission.PARTS_REVIEW, "change a part")
        checked = PART.checked(values, creating=False)

        async def step(w: Writer, held: _Held) -> PartEventKind:
            part = held.part
            if version is not None and version != part.version:
                raise Conflict(
                    f"{part.short_id} was changed by someone else (it is now version "
                    f"{part.version})",
                    field="version",
                    current=describe(part, held.claimer.username if held.claimer else None),
                )
            new_kind = "kind" in checked and checked["kind"] != part.kind
            if new_kind and part.stage != PartStage.REVIEW:
                raise _wrong_stage(part, "given another kind")
            if checked.get("completed_incorrectly") and part.stage != PartStage.COMPLETED:
                raise _wrong_stage(part, "marked completed incorrectly")
            for name, value in checked.items():
                if name == "quantity" and value is None:
                    raise BadUserInput("quantity: is required", field="quantity")
                setattr(
                    part,
                    name,
                    False if name == "completed_incorrectly" and value is None else value,
                )
            return PartEventKind.UPDATED

        try:
            return await self._change(actor, part_id, "update", step)
        except StaleDataError:
            raise Conflict("the part was changed by someone else: read it again") from None

    async def delete(self, actor: User, part_ids: list[int], confirm: str | None) -> list[PartView]:
        """Admins: delete parts (their claims, log and files), each audited with its row. A
        bulk delete must be confirmed with the text `delete <n> parts`."""
        require_admin(actor)
        if not part_ids:
            raise BadUserInput("give at least one part", field="ids")
        if len(part_ids) > 1 and confirm != f"delete {len(part_ids)} parts":
            raise BadUserInput(
                f'deleting {len(part_ids)} parts needs confirm: "delete {len(part_ids)} parts"',
                field="confirm",
            )
        views = []
        async with self.holds.transaction(PART_EVENTS, await self.stream_id(), actor=actor) as w:
            for part_id in dict.fromkeys(part_ids):
                held = await self._held(w.session, part_id)
                before = describe(held.part, held.claimer.username if held.claimer else None)
                self._record(w, held, PartEventKind.DELETED, actor)
                audit.record(
                    w.session,
                    actor=actor,
                    action="delete",
                    resource_type="part",
                    resource_id=held.part.id,
                    before=before,
                )
                views.append(self._view(held))
            if self.delete_files is not None:
                await self.delete_files(w.session, [view.part.id for view in views])
            for view in views:
                await store.remove(w.session, view.part)
        return views

    # -- the workflow -----------------------------------------------------------------------

    async def approve(self, actor: User, part_id: int) -> PartView:
        require(actor, Permission.PARTS_REVIEW, "approve parts")

        async def step(w: Writer, held: _Held) -> PartEventKind:
            if held.part.stage != PartStage.REVIEW:
                raise _wrong_stage(held.part, "approved")
            held.part.stage = making_stage(held.part.kind).value
            held.part.reviewer_id = actor.id
            return PartEventKind.APPROVED

        return await self._change(actor, part_id, "approve", step)

    async def revert(self, actor: User, part_id: int) -> PartView:
        require(actor, Permission.PARTS_REVIEW, "revert parts")

        async def step(w: Writer, held: _Held) -> PartEventKind:
            if held.part.stage != PartStage.COMPLETED:
                raise _wrong_stage(held.part, "reverted")
            held.part.stage = making_stage(held.part.kind).value
            held.part.completed_at = None
            return PartEventKind.REVERTED

        return await self._change(actor, part_id, "revert", step)

    async def claim(self, actor: User, part_id: int) -> PartView:
        """A free, approved part for the actor (their own claim is returned as it is)."""
        me = UserRef.of(actor)
        async with self.holds.transaction(PART_EVENTS, await self.stream_id(), actor=actor) as w:
            held = await self._held(w.session, part_id)
            part = held.part
            if part.stage not in MAKING:
                raise _wrong_stage(part, "claimed")
            mine = held.claim is not None and held.claim.holder_id == actor.id
            if held.claim is not None and not mine:
                raise Conflict(
                    f"{part.short_id} is claimed by {held.claimer.username}",
                    holder={
                        "username": held.claimer.username,
                        "since": held.claim.since.isoformat(),
                    },
                )
            if mine:
                return await self.get(part.id)
            before = describe(part)
            now = utcnow()
            claim = PartClaim(part_id=part.id, holder_id=actor.id, since=now)
            if part.kind == "HAND":
                await store.log_worker(w.session, part.id, actor, now)
                claim.started = True
            given = {"short_id": part.short_id, "name": part.name, "stage": part.stage}
            try:
                await w.take(claim, PartEventKind.CLAIMED, holder=me, actor=me, at=now, given=given)
            except IntegrityError:
                raise Conflict(f"{part.short_id} was just claimed: try again") from None
            held = _Held(part, claim, me)
            self._audit(w, actor, "claim", before, held)
        return await self.get(part.id)

    async def unclaim(self, actor: User, part_id: int) -> PartView:
        async def step(w: Writer, held: _Held) -> PartEventKind:
            if held.part.stage not in MAKING:
                raise _wrong_stage(held.part, "unclaimed")
            self._must_hold(actor, held, "unclaimed")
            if held.claim.started:
                held.part.status = STARTED
            held.releasing = True
            return PartEventKind.UNCLAIMED

        return await self._change(actor, part_id, "unclaim", step)

    async def complete(self, actor: User, part_id: int) -> PartView:
        async def step(w: Writer, held: _Held) -> PartEventKind:
            if held.part.stage not in MAKING:
                raise _wrong_stage(held.part, "completed")
            self._must_hold(actor, held, "completed")
            held.part.stage = PartStage.COMPLETED.value
            held.part.completed_at = utcnow()
            held.part.completed_incorrectly = False
            return PartEventKind.COMPLETED

        return await self._change(actor, part_id, "complete", step)

    async def request_release(self, actor: User, part_id: int, message: str | None) -> Change:
        """Ask the claimer to give the part up: a RELEASE_REQUESTED event and a mail."""
        if message is not None:
            message = message.strip()[:MAX_MESSAGE_LENGTH] or None
        async with self.holds.transaction(PART_EVENTS, await self.stream_id(), actor=actor) as w:
            held = await self._held(w.session, part_id)
            if held.claim is None:
                raise BadUserInput(f"{held.part.short_id} is not claimed", field="id")
            if held.claim.holder_id == actor.id:
                raise BadUserInput("you claimed this part yourself", field="id")
            return self._record(w, held, PartEventKind.RELEASE_REQUESTED, actor, message=message)

    def _must_hold(self, actor: User, held: _Held, action: str) -> None:
        if held.claim is None:
            raise BadUserInput(
                f"{held.part.short_id} is not claimed: it cannot be {action}",
                field="stage",
                stage=held.part.stage,
            )
        if held.claim.holder_id != actor.id and not is_admin(actor):
            raise Forbidden(
                f"{held.part.short_id} is claimed by {held.claimer.username}: only they or an "
                f"admin can do this"
            )

    async def release_all_of_user(
        self, session: AsyncSession, user: User, actor: User, reason: str
    ) -> Callable[[], Awaitable[None]]:
        """Identity's hook: a deactivated or deleted user claims no part still being made
        (the claims of completed parts stay: they say who made them)."""
        stream = await create_stream(session, PART_STREAM)  # in this transaction (SQLite)
        writer = await self.holds.within(session, PART_EVENTS, stream.id)
        for claim in await store.claims_of_user(session, user.id):
            part = await store.get(session, claim.part_id, for_update=True)
            if part.stage not in MAKING:
                continue
            held = _Held(part, claim, UserRef.of(user))
            self._record(writer, held, PartEventKind.UNCLAIMED, actor, message=reason)
            await session.delete(claim)
        await session.flush()

        async def publish() -> None:
            await self.holds.publish(writer)

        return publish

    async def files_changed(self, part_id: int) -> None:
        """A part's files changed (an upload, a delete, a model converted): an UPDATED event,
        so boards showing the part read it again."""
        async with self.holds.transaction(PART_EVENTS, await self.stream_id(), actor=None) as w:
            part = await store.get(w.session, part_id, for_update=True)
            if part is None:
                return
            claim = await store.claim_of(w.session, part_id)
            holder = None
            if claim is not None:
                holder = (await user_refs(w.session, {claim.holder_id})).get(claim.holder_id)
            w.record(
                claim or PartClaim(part_id=part.id),
                PartEventKind.UPDATED,
                holder=holder,
                actor=None,
                at=utcnow(),
                message="files changed",
                given={"short_id": part.short_id, "name": part.name, "stage": part.stage},
            )

    async def purge(self, retention) -> None:
        async with self.db.transaction() as session:
            await purge_events_before(session, PartEvent, utcnow() - retention)

    # -- mail and live ----------------------------------------------------------------------

    async def mail(self, session: AsyncSession, stream_id: int, changes: list[Change]) -> None:
        """The claimer hears when someone else unclaims their part or asks for it."""
        if self.notifier is not None:
            await self.notifier.tell_holders(session, changes, part_alert, "part")

    def follow(
        self,
        stream_id: int,
        *,
        since: int | None = None,
        until: datetime | None = None,
        recheck=None,
        on_overflow=None,
        on_joined=None,
    ) -> AsyncIterator[Change]:
        return self.holds.feeds.follow(
            PART_EVENTS,
            stream_id,
            since,
            until=until,
            recheck=recheck,
            on_overflow=on_overflow,
            on_joined=on_joined,
            what="parts",
        )
