"""GPU holds on the hold engine (domain/holds.py): claim, assign, release, force, "please
release", overdue reminders, history and live events, on the one `gpus` stream.

GPU writes are few (people, not build farms, take GPUs), so every one runs on the engine's
general path: one transaction with the acting user key-share locked, then the stream's row, so
every read under it is current. The unique `gpu_holds.gpu_id` is the last word on a race.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import assets as store
from db.assets import GPU_HOLDS, GPU_STREAM, Gpu, GpuEvent, GpuHold
from db.base import utcnow
from db.engine import Database, try_cluster_lock
from db.identity import User, get_user_by_username, get_users
from db.streams import create_stream, get_stream, purge_events_before
from domain import audit
from domain.access import is_admin, require_admin
from domain.assets.reads import GpuView
from domain.errors import BadUserInput, Conflict, Forbidden, NotFound
from domain.holds import Holds, Writer
from domain.mails import gpu_alert, gpu_overdue
from domain.notify import Notifier
from domain.people import UserRef, missing_user, user_refs
from domain.streams import Change, EventSource, check_since

MAX_HOLD = timedelta(days=366)
MAX_MESSAGE_LENGTH = 500
DEFAULT_HISTORY_PAGE = 100
MAX_HISTORY_PAGE = 1000


class GpuEventKind(enum.StrEnum):
    CLAIMED = "CLAIMED"
    ASSIGNED = "ASSIGNED"
    RELEASED = "RELEASED"
    FORCE_RELEASED = "FORCE_RELEASED"
    RELEASE_REQUESTED = "RELEASE_REQUESTED"


GPU_EVENTS = EventSource(scope=GPU_STREAM, table=GPU_HOLDS)


def _checked_due_back(due_back: datetime | None, now: datetime) -> datetime | None:
    if due_back is None:
        return None
    if due_back.tzinfo is None:
        raise BadUserInput("dueBack needs a time zone", field="dueBack")
    if due_back <= now:
        raise BadUserInput("dueBack must be in the future", field="dueBack")
    if due_back > now + MAX_HOLD:
        raise BadUserInput("dueBack must be within a year", field="dueBack")
    return due_back


def _checked_message(message: str | None) -> str | None:
    if message is None:
        return None
    message = message.strip()
    if len(message) > MAX_MESSAGE_LENGTH:
        raise BadUserInput(
            f"message must be at most {MAX_MESSAGE_LENGTH} characters", field="message"
        )
    return message or None


def _taken(gpu: Gpu, holder: UserRef, since: datetime) -> Conflict:
    return Conflict(
        f"the GPU {gpu.serial} is held by {holder.username}",
        holder={"username": holder.username, "since": since.isoformat()},
    )


class GpuHolds:
    def __init__(self, db: Database, holds: Holds, notifier: Notifier | None = None) -> None:
        self.db = db
        self.holds = holds
        self.notifier = notifier
        self._stream_id: int | None = None
        holds.serve(GPU_EVENTS)
        if notifier is not None:
            GPU_EVENTS.mail = self.mail
            notifier.mail_on(GPU_EVENTS)

    async def stream_id(self) -> int:
        if self._stream_id is None:
            async with self.db.transaction() as session:
                self._stream_id = (await create_stream(session, GPU_STREAM)).id
        return self._stream_id

    async def _gpu(self, session: AsyncSession, gpu_id: int) -> Gpu:
        gpu = await store.get(session, Gpu, gpu_id)
        if gpu is None:
            raise NotFound(f"no GPU with id {gpu_id}", field="id")
        return gpu

    async def _holder(self, session: AsyncSession, hold: GpuHold) -> UserRef:
        return (await user_refs(session, {hold.holder_id})).get(hold.holder_id) or missing_user(
            hold.holder_id
        )

    async def _take(
        self, w: Writer, gpu: Gpu, holder: UserRef, actor: UserRef, kind: str, due_back
    ) -> GpuView:
        now = utcnow()
        hold = GpuHold(
            gpu_id=gpu.id,
            serial=gpu.serial,
            model=gpu.model,
            holder_id=holder.id,
            since=now,
            due_back=due_back,
        )
        try:
            await w.take(hold, kind, holder=holder, actor=actor, at=now)
        except IntegrityError:
            raise Conflict(f"the GPU {gpu.serial} was just taken: try again") from None
        return GpuView(gpu, hold, holder)

    # -- writes ------------------------------------------------------------------------------

    async def claim(self, actor: User, gpu_id: int, due_back: datetime | None = None) -> GpuView:
        """A free GPU for the actor; their own hold is returned as it is."""
        due_back = _checked_due_back(due_back, utcnow())
        me = UserRef.of(actor)
        async with self.holds.transaction(GPU_EVENTS, await self.stream_id(), actor=actor) as w:
            gpu = await self._gpu(w.session, gpu_id)
            hold = await store.hold_of(w.session, gpu.id)
            if hold is not None:
                if hold.holder_id != actor.id:
                    raise _taken(gpu, await self._holder(w.session, hold), hold.since)
                return GpuView(gpu, hold, me)
            return await self._take(w, gpu, me, me, GpuEventKind.CLAIMED, due_back)

    async def assign(
        self, actor: User, gpu_id: int, username: str, due_back: datetime | None = None
    ) -> GpuView:
        """Admins: give a free GPU to someone (or change when their hold is due back)."""
        require_admin(actor)
        due_back = _checked_due_back(due_back, utcnow())
        async with self.holds.transaction(GPU_EVENTS, await self.stream_id(), actor=actor) as w:
            gpu = await self._gpu(w.session, gpu_id)
            target = await get_user_by_username(w.session, username)
            if target is None or not target.active:
                raise BadUserInput(f"there is no active user {username!r}", field="username")
            holder = UserRef.of(target)
            hold = await store.hold_of(w.session, gpu.id)
            before = None
            if hold is not None:
                if hold.holder_id != target.id:
                    raise _taken(gpu, await self._holder(w.session, hold), hold.since)
                if hold.due_back == due_back:
                    return GpuView(gpu, hold, holder)
                before = {"holder": holder.username, "dueBack": _iso(hold.due_back)}
                hold.due_back = due_back
                hold.overdue_mailed_at = None
                w.record(
                    hold,
                    GpuEventKind.ASSIGNED,
                    holder=holder,
                    actor=UserRef.of(actor),
                    at=utcnow(),
                )
                view = GpuView(gpu, hold, holder)
            else:
                view = await self._take(
                    w, gpu, holder, UserRef.of(actor), GpuEventKind.ASSIGNED, due_back
                )
            audit.record(
                w.session,
                actor=actor,
                action="assign",
                resource_type="gpu",
                resource_id=gpu.id,
                before=before or {"holder": None, "dueBack": None},
                after={"holder": holder.username, "dueBack": _iso(due_back)},
            )
        return view

    async def release(self, actor: User, gpu_id: int, *, force: bool = False) -> GpuView:
        """The holder gives it back; with `force` an admin takes it from anyone (the holder is
        told). Returns the GPU as it was held."""
        async with self.holds.transaction(GPU_EVENTS, await self.stream_id(), actor=actor) as w:
            gpu = await self._gpu(w.session, gpu_id)
            hold = await store.hold_of(w.session, gpu.id)
            if hold is None:
                raise NotFound(f"the GPU {gpu.serial} is not held", field="id")
            holder = await self._holder(w.session, hold)
            mine = hold.holder_id == actor.id
            if not mine and not force:
                raise Forbidden(
                    f"the GPU {gpu.serial} is held by {holder.username}: only they or an admin "
                    "(with force) can release it"
                )
            if not mine and not is_admin(actor):
                raise Forbidden("only an admin may force-release someone else's GPU")
            kind = GpuEventKind.RELEASED if mine else GpuEventKind.FORCE_RELEASED
            w.record(hold, kind, holder=holder, actor=UserRef.of(actor), at=utcnow())
            if not mine:
                audit.record(
                    w.session,
                    actor=actor,
                    action="force_release",
                    resource_type="gpu",
                    resource_id=gpu.id,
                    before={"holder": holder.username, "dueBack": _iso(hold.due_back)},
                    after={"holder": None, "dueBack": None},
                )
            await w.session.delete(hold)
        return GpuView(gpu, hold, holder)

    async def request_release(self, actor: User, gpu_id: int, message: str | None = None) -> Change:
        """Ask the holder to give it back: a RELEASE_REQUESTED event (and a mail)."""
        message = _checked_message(message)
        async with self.holds.transaction(GPU_EVENTS, await self.stream_id(), actor=actor) as w:
            gpu = await self._gpu(w.session, gpu_id)
            hold = await store.hold_of(w.session, gpu.id)
            if hold is None:
                raise NotFound(f"the GPU {gpu.serial} is not held", field="id")
            if hold.holder_id == actor.id:
                raise BadUserInput("you hold this GPU yourself", field="id")
            holder = await self._holder(w.session, hold)
            return w.record(
                hold,
                GpuEventKind.RELEASE_REQUESTED,
                holder=holder,
                actor=UserRef.of(actor),
                at=utcnow(),
                message=message,
            )

    async def release_held(
        self, session: AsyncSession, gpu_ids: list[int], actor: User, reason: str
    ) -> Callable[[], Awaitable[None]]:
        """Inside the caller's transaction: force-release these GPUs' holds (they are about to
        be deleted). Returns what publishes the events after commit."""
        stream = await create_stream(session, GPU_STREAM)  # in this transaction (SQLite)
        writer = await self.holds.within(session, GPU_EVENTS, stream.id)
        holds = [hold for gpu_id in gpu_ids if (hold := await store.hold_of(session, gpu_id))]
        await self._force(writer, holds, actor, reason)

        async def publish() -> None:
            await self.holds.publish(writer)

        return publish

    async def release_all_of_user(
        self, session: AsyncSession, user: User, actor: User, reason: str
    ) -> Callable[[], Awaitable[None]]:
        """Identity's hook: a deactivated or deleted user holds no GPU."""
        stream = await create_stream(session, GPU_STREAM)  # in this transaction (SQLite)
        writer = await self.holds.within(session, GPU_EVENTS, stream.id)
        await self._force(writer, await store.holds_of_user(session, user.id), actor, reason)

        async def publish() -> None:
            await self.holds.publish(writer)

        return publish

    async def _force(self, writer: Writer, holds: list[GpuHold], actor: User, reason: str):
        people = await user_refs(writer.session, {hold.holder_id for hold in holds})
        now = utcnow()
        for hold in holds:
            holder = people.get(hold.holder_id) or missing_user(hold.holder_id)
            kind = (
                GpuEventKind.RELEASED if hold.holder_id == actor.id else GpuEventKind.FORCE_RELEASED
            )
            writer.record(
                hold, kind, holder=holder, actor=UserRef.of(actor), at=now, message=reason
            )
            await writer.session.delete(hold)
        await writer.session.flush()

    # -- overdue -----------------------------------------------------------------------------

    async def remind_overdue(self, retention: timedelta | None = None) -> int:
        """Mail every holder whose hold is past its due-back time, once per hold (a new due
        date starts over), and drop events older than `retention`. Runs on the job system,
        once per cluster."""
        now = utcnow()
        async with self.db.transaction() as session:
            if not await try_cluster_lock(session, "gpu-overdue"):
                return 0
            if retention is not None:
                await purge_events_before(session, GpuEvent, now - retention)
            if self.notifier is None:
                return 0
            holds = await store.overdue_holds(session, now)
            holders = {
                user.id: user for user in await get_users(session, {h.holder_id for h in holds})
            }
            for hold in holds:
                hold.overdue_mailed_at = now
                holder = holders.get(hold.holder_id)
                if holder is not None and holder.active:
                    mail = gpu_overdue(
                        hold.serial, hold.model, hold.due_back, self.notifier.public_url
                    )
                    await self.notifier.queue(session, "gpu-overdue", holder.email, mail)
        return len(holds)

    async def mail(self, session: AsyncSession, stream_id: int, changes: list[Change]) -> None:
        """The mailer's rule for GPU events: the holder hears when someone else acts on their
        hold (force-release, a request, an assignment)."""
        if self.notifier is not None:
            await self.notifier.tell_holders(session, changes, gpu_alert, "gpu")

    # -- reading -----------------------------------------------------------------------------

    async def history(
        self,
        *,
        since: int | None = None,
        first: int | None = None,
        gpu_id: int | None = None,
        username: str | None = None,
    ) -> list[Change]:
        """Stored events with seq > since, oldest first; of one GPU, or of one user (as holder
        or as actor)."""
        if first is not None and not 0 <= first <= MAX_HISTORY_PAGE:
            raise BadUserInput(f"first must be between 0 and {MAX_HISTORY_PAGE}", field="first")
        limit = DEFAULT_HISTORY_PAGE if first is None else first
        stream_id = await self.stream_id()
        async with self.db.read() as session:
            stream = await get_stream(session, stream_id)
            check_since(since, stream.purged_through_seq, "GPUs")
            user_id = None
            if username is not None:
                user = await get_user_by_username(session, username)
                if user is None:
                    return []
                user_id = user.id
            if gpu_id is None and user_id is None:
                return await GPU_EVENTS.stored(session, stream_id, since or 0, limit=limit)
            events = await store.gpu_events(
                session, stream_id, since or 0, limit, gpu_id=gpu_id, user_id=user_id
            )
            return await GPU_EVENTS.changes_of(session, events)

    def follow(
        self,
        stream_id: int,
        *,
        since: int | None = None,
        until: datetime | None = None,
        recheck: Callable[[], Awaitable[None]] | None = None,
        on_overflow: Callable[[], Awaitable[None]] | None = None,
        on_joined: Callable[[], None] | None = None,
    ) -> AsyncIterator[Change]:
        return self.holds.feeds.follow(
            GPU_EVENTS,
            stream_id,
            since,
            until=until,
            recheck=recheck,
            on_overflow=on_overflow,
            on_joined=on_joined,
            what="GPUs",
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
