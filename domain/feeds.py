"""Live changes of every stream, delivered in seq order with no gap and no duplicate.

Each process keeps one feed per stream that has subscribers. A feed listens to the stream's bus
channel and delivers seq `last + 1`; it drops what it has delivered, and when a seq jumps
(pub/sub delivers in publish order, not commit order, and loses messages while the bus
reconnects) it reads the missing events from the table first. When the bus says it may have
lost messages, or has been quiet for `check_interval`, the feed asks the table for anything
newer. Subscribers join synchronously, replay the table up to the join point, then read their
own queue. One that falls behind is cut off and reconnects with `since`: more than
`queue_size` events waiting for `STALL_SECONDS` while it took none (a burst from one big write
leaves a reader that keeps taking alone), or more than `HARD_BACKLOG` whatever it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from db import streams as store
from db.engine import Database
from domain.bus import EventBus
from domain.errors import BadUserInput, DomainError, Unauthenticated
from domain.streams import Change, EventSource, check_since

logger = logging.getLogger("holdfast.feeds")

REPLAY_PAGE = 500
RECHECK_INTERVAL = 30.0
MAX_MESSAGE_BYTES = 7000
STALL_SECONDS = 0.5
HARD_BACKLOG = 20_000


class SubscriberTooSlow(DomainError):
    code = "RATE_LIMITED"


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue
    on_overflow: Callable[[], Awaitable[None]] | None = None
    overflowed: bool = False
    taken_at: float = 0.0
    """When it last took an event."""
    behind_since: float | None = None
    """Since when it has had more than `queue_size` events waiting."""

    def took(self) -> None:
        self.taken_at = time.monotonic()


@dataclass(eq=False)
class StreamFeed:
    source: EventSource
    stream_id: int
    last: int = 0
    subscribers: set[Subscriber] = field(default_factory=set)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None


def channel(stream_id: int) -> str:
    return f"stream:{stream_id}"


class Feeds:
    def __init__(
        self, db: Database, bus: EventBus, *, queue_size: int = 1000, check_interval: float = 2.0
    ) -> None:
        self.db = db
        self.bus = bus
        self.queue_size = queue_size
        self.check_interval = check_interval
        self._feeds: dict[int, StreamFeed] = {}
        self._cut_off: set[asyncio.Task] = set()
        self._outgoing: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._publisher: asyncio.Task | None = None

    async def publish(self, source: EventSource, stream_id: int, changes: list[Change]) -> None:
        """Announce committed changes: to this process's feed at once, and to every replica
        over the bus, in the background, in commit order and in as few round trips as the bus
        allows, so no request waits for it; a bus failure only delays delivery elsewhere
        (feeds poll the table)."""
        if not changes:
            return
        feed = self._feeds.get(stream_id)
        if feed is not None and feed.ready.is_set():
            # This process's own subscribers need not wait for the bus's round trip; what
            # does not follow on directly is left to the bus (and the feed's gap filling).
            for change in changes:
                if change.seq == feed.last + 1:
                    self._deliver(feed, change)
            self._check_backlogs(feed)
        batch, size = [], 0
        for change in changes:
            encoded = source.encode(change)
            if batch and size + len(encoded) > MAX_MESSAGE_BYTES:
                self._send(stream_id, batch)
                batch, size = [], 0
            batch.append(encoded)
            size += len(encoded) + 1
        self._send(stream_id, batch)

    def _send(self, stream_id: int, batch: list[bytes]) -> None:
        self._outgoing.put_nowait((channel(stream_id), (b"[" + b",".join(batch) + b"]").decode()))
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.create_task(self._publish(), name="holdfast-publisher")

    async def _publish(self) -> None:
        while True:
            messages = [await self._outgoing.get()]
            while not self._outgoing.empty() and len(messages) < 500:
                messages.append(self._outgoing.get_nowait())
            try:
                await self.bus.publish_many(messages)
            except Exception as error:
                logger.warning("could not publish stream events: %s", type(error).__name__)
            finally:
                for _ in messages:
                    self._outgoing.task_done()

    async def flush(self) -> None:
        """Wait until what was published so far has left (for shutdown and tests)."""
        if self._publisher is not None and not self._publisher.done():
            await self._outgoing.join()

    async def _newest_seq(self, stream_id: int) -> int:
        async with self.db.read() as session:
            return await store.newest_seq(session, stream_id)

    # -- the feed task -----------------------------------------------------------------------

    def _deliver(self, feed: StreamFeed, change: Change) -> None:
        feed.last = change.seq
        for subscriber in list(feed.subscribers):
            subscriber.queue.put_nowait(change)
            if subscriber.queue.qsize() > HARD_BACKLOG:
                self._cut_off_subscriber(feed, subscriber)

    def _check_backlogs(self, feed: StreamFeed) -> None:
        """After a delivery: cut off whoever has been behind, taking nothing, for a while."""
        now = time.monotonic()
        for subscriber in list(feed.subscribers):
            if subscriber.queue.qsize() <= self.queue_size:
                subscriber.behind_since = None
            elif subscriber.behind_since is None:
                subscriber.behind_since = now
            elif (
                now - subscriber.behind_since > STALL_SECONDS
                and now - subscriber.taken_at > STALL_SECONDS
            ):
                self._cut_off_subscriber(feed, subscriber)

    def _cut_off_subscriber(self, feed: StreamFeed, subscriber: Subscriber) -> None:
        """Drop a subscriber from its feed; it ends with SubscriberTooSlow and reconnects."""
        logger.warning("cut off a subscriber that fell behind on stream %s", feed.stream_id)
        subscriber.overflowed = True
        feed.subscribers.discard(subscriber)
        subscriber.queue.put_nowait(None)
        if subscriber.on_overflow is not None:
            task = asyncio.create_task(subscriber.on_overflow())
            self._cut_off.add(task)
            task.add_done_callback(self._cut_off.discard)

    async def _catch_up(self, feed: StreamFeed, through: int | None = None) -> None:
        async with self.db.read() as session:
            changes = await feed.source.stored(
                session, feed.stream_id, feed.last, through_seq=through
            )
        for change in changes:
            if change.seq == feed.last + 1:
                self._deliver(feed, change)
        self._check_backlogs(feed)

    async def _run(self, feed: StreamFeed) -> None:
        try:
            async with self.bus.subscribe(channel(feed.stream_id)) as messages:
                feed.last = await self._newest_seq(feed.stream_id)
                feed.ready.set()
                await self._follow_bus(feed, messages)
        finally:
            # The feed is gone (bus closed, shutdown): its subscribers must reconnect.
            for subscriber in list(feed.subscribers):
                self._cut_off_subscriber(feed, subscriber)

    async def _follow_bus(self, feed: StreamFeed, messages) -> None:
        pending = asyncio.ensure_future(anext(messages))
        try:
            while True:
                behind = any(s.behind_since is not None for s in feed.subscribers)
                timeout = min(self.check_interval, STALL_SECONDS) if behind else self.check_interval
                done, _ = await asyncio.wait({pending}, timeout=timeout)
                try:
                    if not done:
                        self._check_backlogs(feed)
                        if await self._newest_seq(feed.stream_id) > feed.last:
                            await self._catch_up(feed)
                        continue
                    try:
                        message = pending.result()
                    except StopAsyncIteration:
                        return
                    except Exception as error:
                        logger.warning(
                            "feed of stream %s lost the bus (%s): polling the database",
                            feed.stream_id,
                            type(error).__name__,
                        )
                        pending = asyncio.get_running_loop().create_future()
                        continue
                    pending = asyncio.ensure_future(anext(messages))
                    if message is None:  # the bus may have lost messages: check the table
                        await self._catch_up(feed)
                        continue
                    for change in feed.source.decode(message):
                        if change.seq <= feed.last:
                            continue
                        if change.seq > feed.last + 1:
                            await self._catch_up(feed, change.seq - 1)
                        if change.seq == feed.last + 1:
                            self._deliver(feed, change)
                    self._check_backlogs(feed)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("feed of stream %s", feed.stream_id)
                    await asyncio.sleep(self.check_interval)
        finally:
            pending.cancel()

    def _join(self, source: EventSource, stream_id: int, subscriber: Subscriber) -> StreamFeed:
        """Add a subscriber to the stream's running feed, starting one if needed.

        Synchronous on purpose: between finding the feed and joining it nothing else runs, so
        a feed is never torn down under a subscriber that is joining it.
        """
        feed = self._feeds.get(stream_id)
        if feed is None or feed.task is None or feed.task.done():
            feed = StreamFeed(source, stream_id)
            self._feeds[stream_id] = feed
            feed.task = asyncio.create_task(self._run(feed), name=f"feed-{stream_id}")
        feed.subscribers.add(subscriber)
        return feed

    @staticmethod
    async def _ready(feed: StreamFeed) -> None:
        if feed.ready.is_set():
            return
        ready = asyncio.ensure_future(feed.ready.wait())
        try:
            await asyncio.wait({ready, feed.task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if not feed.ready.is_set():
            feed.task.result()
            raise RuntimeError("the feed stopped before it was ready")

    def _leave(self, feed: StreamFeed, subscriber: Subscriber) -> None:
        feed.subscribers.discard(subscriber)
        if not feed.subscribers and self._feeds.get(feed.stream_id) is feed:
            del self._feeds[feed.stream_id]
            if feed.task is not None:
                feed.task.cancel()

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self.flush()
        if self._publisher is not None:
            self._publisher.cancel()
        for feed in list(self._feeds.values()):
            if feed.task is not None:
                feed.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await feed.task
        self._feeds.clear()

    # -- subscribing ---------------------------------------------------------------------------

    async def follow(
        self,
        source: EventSource,
        stream_id: int,
        since: int | None,
        *,
        accept: Callable[[Change], bool] | None = None,
        until: datetime | None = None,
        recheck: Callable[[], Awaitable[None]] | None = None,
        on_overflow: Callable[[], Awaitable[None]] | None = None,
        on_joined: Callable[[], None] | None = None,
        what: str = "state",
    ) -> AsyncIterator[Change]:
        """Every change after `since` (stored ones first), then live ones, in seq order.

        Without `since`, only changes from now on; only those `accept` takes are yielded.
        Ends with Unauthenticated at `until`, and when `recheck` (called every
        `RECHECK_INTERVAL` seconds) raises: the caller's access was revoked. A subscriber that
        falls behind is dropped and `on_overflow` is called: it may be stuck sending to a dead
        client, so only closing its connection frees it. `on_joined` is called once the
        subscriber has its place in the feed: every change committed after that reaches it.
        """
        if since is not None and since < 0:
            raise BadUserInput("since must not be negative", field="since")
        subscriber = Subscriber(asyncio.Queue(), on_overflow)
        feed = self._join(source, stream_id, subscriber)
        try:
            await self._ready(feed)
            joined_at = feed.last
            if on_joined is not None:
                on_joined()
            last = joined_at if since is None else since
            if since is not None and since > joined_at:
                newest = await self._newest_seq(stream_id)  # the bus may not have said yet
                if since > newest:
                    raise BadUserInput(
                        f"since is ahead of the newest event ({newest})", field="since"
                    )
            while last < joined_at:
                async with self.db.read() as session:
                    page = await source.stored(
                        session, stream_id, last, through_seq=joined_at, limit=REPLAY_PAGE
                    )
                    if not page or page[0].seq != last + 1:
                        stream = await store.get_stream(session, stream_id)
                        check_since(last, stream.purged_through_seq if stream else last + 1, what)
                        raise BadUserInput(
                            f"events after seq {last} are no longer kept: refetch the current "
                            f"{what} and follow from its newest seq",
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
                    subscriber.took()
                except asyncio.QueueEmpty:
                    try:
                        async with asyncio.timeout(max(timeout, 0)):
                            change = await subscriber.queue.get()
                            subscriber.took()
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
