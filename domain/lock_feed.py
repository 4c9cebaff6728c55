"""Live lock events: one feed per project per process, gapless and in seq order.

A project's seqs are dense (1, 2, 3 …), so a feed knows exactly what it lacks. It listens to the
bus; an event with the next seq is delivered, an older one dropped, and a jump (pub/sub delivers
in publish order, not commit order, and loses messages while Redis reconnects) is filled from
the event table first. When the bus is quiet the feed also asks the database for the newest seq,
so a lost message is found within `check_interval` even if no later one arrives.

Subscribers join a feed, replay what they missed from the table, then read its queue. A queue is
bounded: a subscriber that falls behind is cut off (`SubscriberTooSlow`) and reconnects with
`since`, instead of holding back or bloating the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from db import locks as store
from db import projects as project_store
from db.engine import Database
from db.identity import User, get_users
from db.locks import LockEvent
from domain.bus import EventBus
from domain.errors import BadUserInput, DomainError, Unauthenticated

logger = logging.getLogger("holdfast.lock_feed")

REPLAY_PAGE = 500
RECHECK_INTERVAL = 30.0


@dataclass(frozen=True)
class UserRef:
    id: int
    username: str
    role: str
    active: bool

    @classmethod
    def of(cls, user: User) -> UserRef:
        return cls(user.id, user.username, user.role, user.active)


async def user_refs(session: AsyncSession, user_ids: set[int]) -> dict[int, UserRef]:
    return {user.id: UserRef.of(user) for user in await get_users(session, user_ids)}


def missing_user(user_id: int, username: str | None = None) -> UserRef:
    """A user a lock or event names who has since been deleted."""
    return UserRef(user_id, username or "(deleted)", "user", False)


@dataclass(frozen=True)
class LockChange:
    """A stored lock event with the people it names."""

    event: LockEvent
    owner: UserRef
    actor: UserRef | None

    @property
    def seq(self) -> int:
        return self.event.seq


_EVENT_FIELDS = (
    "project_id",
    "seq",
    "kind",
    "lock_id",
    "path",
    "owner_id",
    "owner_username",
    "branch",
    "comment",
    "fencing_token",
    "actor_id",
    "actor_username",
    "message",
)
_TIME_FIELDS = ("acquired_at", "expires_at", "at")


def encode(change: LockChange) -> str:
    event = change.event
    data = {name: getattr(event, name) for name in _EVENT_FIELDS}
    for name in _TIME_FIELDS:
        value = getattr(event, name)
        data[name] = value.isoformat() if value else None
    data["owner"] = list(vars(change.owner).values())
    data["actor"] = list(vars(change.actor).values()) if change.actor else None
    return json.dumps(data, separators=(",", ":"))


def decode(message: str) -> LockChange:
    data = json.loads(message)
    owner, actor = data.pop("owner"), data.pop("actor")
    for name in _TIME_FIELDS:
        data[name] = datetime.fromisoformat(data[name]) if data[name] else None
    return LockChange(
        event=LockEvent(**data), owner=UserRef(*owner), actor=UserRef(*actor) if actor else None
    )


class SubscriberTooSlow(DomainError):
    code = "RATE_LIMITED"


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue
    on_overflow: Callable[[], Awaitable[None]] | None = None
    overflowed: bool = False


@dataclass(eq=False)
class ProjectFeed:
    project_id: int
    last: int = 0
    subscribers: set[Subscriber] = field(default_factory=set)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None


class LockFeeds:
    def __init__(
        self, db: Database, bus: EventBus, *, queue_size: int = 1000, check_interval: float = 2.0
    ) -> None:
        self.db = db
        self.bus = bus
        self.queue_size = queue_size
        self.check_interval = check_interval
        self._feeds: dict[int, ProjectFeed] = {}
        self._cut_off: set[asyncio.Task] = set()

    @staticmethod
    def channel(project_id: int) -> str:
        return f"lock-events:{project_id}"

    async def publish(self, project_id: int, changes: list[LockChange]) -> None:
        """Announce committed changes; a bus failure only delays delivery (feeds poll)."""
        for change in changes:
            try:
                await self.bus.publish(self.channel(project_id), encode(change))
            except Exception as error:
                logger.warning("could not publish lock event: %s", type(error).__name__)
                return

    async def stored_changes(
        self,
        session: AsyncSession,
        project_id: int,
        after_seq: int,
        *,
        through_seq: int | None = None,
        limit: int | None = None,
    ) -> list[LockChange]:
        events = await store.events_after(
            session, project_id, after_seq, through_seq=through_seq, limit=limit
        )
        users = await user_refs(
            session,
            {event.owner_id for event in events}
            | {event.actor_id for event in events if event.actor_id is not None},
        )

        def ref(user_id: int | None, username: str | None) -> UserRef | None:
            if user_id is None:
                return None
            return users.get(user_id) or missing_user(user_id, username)

        return [
            LockChange(
                event=event,
                owner=ref(event.owner_id, event.owner_username),
                actor=ref(event.actor_id, event.actor_username),
            )
            for event in events
        ]

    async def _read(self, project_id: int, after: int, through: int | None = None):
        async with self.db.read() as session:
            return await self.stored_changes(session, project_id, after, through_seq=through)

    async def _newest_seq(self, project_id: int) -> int:
        async with self.db.read() as session:
            project = await project_store.get_project(session, project_id)
            return project.last_seq if project else 0

    # -- the feed task -----------------------------------------------------------------------

    def _deliver(self, feed: ProjectFeed, change: LockChange) -> None:
        feed.last = change.seq
        for subscriber in list(feed.subscribers):
            try:
                subscriber.queue.put_nowait(change)
            except asyncio.QueueFull:
                logger.warning(
                    "cut off a subscriber that fell behind on project %s", feed.project_id
                )
                self._cut_off_subscriber(feed, subscriber)

    def _cut_off_subscriber(self, feed: ProjectFeed, subscriber: Subscriber) -> None:
        """Drop a subscriber from its feed; it ends with SubscriberTooSlow and reconnects."""
        subscriber.overflowed = True
        feed.subscribers.discard(subscriber)
        with contextlib.suppress(asyncio.QueueFull):
            subscriber.queue.put_nowait(None)
        if subscriber.on_overflow is not None:
            task = asyncio.create_task(subscriber.on_overflow())
            self._cut_off.add(task)
            task.add_done_callback(self._cut_off.discard)

    async def _catch_up(self, feed: ProjectFeed, through: int | None = None) -> None:
        for change in await self._read(feed.project_id, feed.last, through):
            if change.seq == feed.last + 1:
                self._deliver(feed, change)

    async def _run(self, feed: ProjectFeed) -> None:
        try:
            async with self.bus.subscribe(self.channel(feed.project_id)) as messages:
                feed.last = await self._newest_seq(feed.project_id)
                feed.ready.set()
                await self._follow_bus(feed, messages)
        finally:
            # The feed is gone (bus closed, shutdown): its subscribers must reconnect.
            for subscriber in list(feed.subscribers):
                self._cut_off_subscriber(feed, subscriber)

    async def _follow_bus(self, feed: ProjectFeed, messages) -> None:
        pending = asyncio.ensure_future(anext(messages))
        try:
            while True:
                done, _ = await asyncio.wait({pending}, timeout=self.check_interval)
                try:
                    if not done:
                        if await self._newest_seq(feed.project_id) > feed.last:
                            await self._catch_up(feed)
                        continue
                    try:
                        message = pending.result()
                    except StopAsyncIteration:
                        return
                    except Exception as error:
                        logger.warning(
                            "lock feed of project %s lost the bus (%s): polling the database",
                            feed.project_id,
                            type(error).__name__,
                        )
                        pending = asyncio.get_running_loop().create_future()
                        continue
                    pending = asyncio.ensure_future(anext(messages))
                    if message is None:  # the bus may have lost messages: check the table
                        await self._catch_up(feed)
                        continue
                    change = decode(message)
                    if change.seq <= feed.last:
                        continue
                    if change.seq > feed.last + 1:
                        await self._catch_up(feed, change.seq - 1)
                    if change.seq == feed.last + 1:
                        self._deliver(feed, change)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("lock feed of project %s", feed.project_id)
                    await asyncio.sleep(self.check_interval)
        finally:
            pending.cancel()

    def _join(self, project_id: int, subscriber: Subscriber) -> ProjectFeed:
        """Add a subscriber to the project's running feed, starting one if needed.

        Synchronous on purpose: between finding the feed and joining it nothing else runs, so
        a feed is never torn down under a subscriber that is joining it.
        """
        feed = self._feeds.get(project_id)
        if feed is None or feed.task is None or feed.task.done():
            feed = ProjectFeed(project_id)
            self._feeds[project_id] = feed
            feed.task = asyncio.create_task(self._run(feed), name=f"lock-feed-{project_id}")
        feed.subscribers.add(subscriber)
        return feed

    @staticmethod
    async def _ready(feed: ProjectFeed) -> None:
        ready = asyncio.ensure_future(feed.ready.wait())
        try:
            await asyncio.wait({ready, feed.task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if not feed.ready.is_set():
            feed.task.result()
            raise RuntimeError("the lock feed stopped before it was ready")

    def _leave(self, feed: ProjectFeed, subscriber: Subscriber) -> None:
        feed.subscribers.discard(subscriber)
        if not feed.subscribers and self._feeds.get(feed.project_id) is feed:
            del self._feeds[feed.project_id]
            if feed.task is not None:
                feed.task.cancel()

    async def close(self) -> None:
        for feed in list(self._feeds.values()):
            if feed.task is not None:
                feed.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await feed.task
        self._feeds.clear()

    # -- subscribing ---------------------------------------------------------------------------

    async def follow(
        self,
        project_id: int,
        since: int | None,
        *,
        newest_seq: int,
        accept: Callable[[LockChange], bool] | None = None,
        until: datetime | None = None,
        recheck: Callable[[], Awaitable[None]] | None = None,
        on_overflow: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncIterator[LockChange]:
        """Every change after `since` (stored ones first), then live ones, in seq order.

        Without `since`, only changes from now on; only those `accept` takes are yielded.
        Ends with Unauthenticated at `until`, and when `recheck` (called every
        `RECHECK_INTERVAL` seconds) raises: the caller's access was revoked. A subscriber that
        falls `queue_size` events behind is dropped and `on_overflow` is called: it may be stuck
        sending to a dead client, so only closing its connection frees it.
        """
        subscriber = Subscriber(asyncio.Queue(self.queue_size), on_overflow)
        feed = self._join(project_id, subscriber)
        try:
            await self._ready(feed)
            joined_at = feed.last
            last = joined_at if since is None else since
            if since is not None and since > max(newest_seq, joined_at):
                raise BadUserInput(
                    f"since is ahead of the newest event ({newest_seq})", field="since"
                )
            while last < joined_at:
                async with self.db.read() as session:
                    page = await self.stored_changes(
                        session, project_id, last, through_seq=joined_at, limit=REPLAY_PAGE
                    )
                if not page or page[0].seq != last + 1:
                    raise BadUserInput(
                        f"events after seq {last} are no longer kept: refetch the current locks "
                        "and follow from their newest seq",
                        field="since",
                        reason="refetch",
                    )
                for change in page:
                    last = change.seq
                    if accept is None or accept(change):
                        yield change
            next_check = time.monotonic() + RECHECK_INTERVAL
            while True:
                timeout = next_check - time.monotonic()
                if until is not None:
                    left = (until - datetime.now(until.tzinfo)).total_seconds()
                    if left <= 0:
                        raise Unauthenticated(
                            "the access token has expired: refresh it and subscribe again with "
                            "since",
                            reason="expired",
                        )
                    timeout = min(timeout, left)
                try:
                    change = subscriber.queue.get_nowait()
                except asyncio.QueueEmpty:
                    try:
                        async with asyncio.timeout(max(timeout, 0)):
                            change = await subscriber.queue.get()
                    except TimeoutError:
                        change = None
                if recheck is not None and time.monotonic() >= next_check:
                    await recheck()
                    next_check = time.monotonic() + RECHECK_INTERVAL
                if subscriber.overflowed:
                    raise SubscriberTooSlow(
                        "this subscriber fell behind or its feed stopped: reconnect with since"
                    )
                if change is None:
                    continue
                if change.seq <= last:
                    continue
                last = change.seq
                if accept is None or accept(change):
                    yield change
        finally:
            self._leave(feed, subscriber)
