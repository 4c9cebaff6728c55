"""The event bus: broadcaster, on Redis pub/sub, PostgreSQL LISTEN/NOTIFY or in-process.

broadcaster (the design's bus package) fans a channel out to local subscribers; the backends
that talk to Redis and PostgreSQL are ours, because broadcaster 0.3.1's own lose every message
with redis-py 8 and never recover from a dropped connection. Ours reconnect with backoff,
re-subscribe, and then hand every subscribed channel a `None` message — "you may have missed
messages" — so subscribers fill the gap from the database.

`healthy` and `epoch` let per-process caches trust the bus only while it is connected: every
reconnect starts a new epoch, and what was cached in an earlier one may have missed an
invalidation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import redis.asyncio as redis
from broadcaster import Broadcast, BroadcastBackend, Event
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.engine import make_url

logger = logging.getLogger("holdfast.bus")

MAX_BACKOFF_SECONDS = 5.0
MAX_PAYLOAD_BYTES = 7000
"""PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; publishers split below this."""


class _Backend(BroadcastBackend):
    """What our backends share: a queue of received events, the subscribed channels, and the
    'may have missed messages' marker after a reconnect."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._channels: set[str] = set()
        self.healthy = False
        self.epoch = 0

    def _set_healthy(self, healthy: bool) -> None:
        if healthy and not self.healthy:
            self.epoch += 1
        self.healthy = healthy

    async def publish_many(self, messages: list[tuple[str, str]]) -> None:
        for channel, message in messages:
            await self.publish(channel, message)

    async def announce(self, channel: str, message: str) -> int | None:
        """Publish, and say how many processes are subscribed to hear it (None: unknown)."""
        await self.publish(channel, message)
        return None

    def _lost_messages(self) -> None:
        for channel in self._channels:
            self._queue.put_nowait(Event(channel, None))

    async def next_published(self) -> Event:
        return await self._queue.get()


class MemoryBackend(_Backend):
    """One process: a published message goes straight to this process's subscribers."""

    async def connect(self) -> None:
        self._set_healthy(True)

    async def disconnect(self) -> None:
        self._set_healthy(False)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def publish(self, channel: str, message: Any) -> None:
        if channel in self._channels:
            self._queue.put_nowait(Event(channel, message))


_REDIS_LOST = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisBackend(_Backend):
    """Redis pub/sub; one listener reads the subscription connection and survives restarts."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._redis = redis.Redis.from_url(url)
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._listener: asyncio.Task | None = None

    async def connect(self) -> None:
        await self._redis.ping()
        self._set_healthy(True)
        self._listener = asyncio.create_task(self._listen(), name="holdfast-bus-redis")

    async def disconnect(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, *_REDIS_LOST):
                await self._listener
        with contextlib.suppress(*_REDIS_LOST):
            await self._pubsub.aclose()
        await self._redis.aclose()
        self._set_healthy(False)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        with contextlib.suppress(*_REDIS_LOST):  # the listener re-subscribes on reconnect
            await self._pubsub.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        with contextlib.suppress(*_REDIS_LOST):
            await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: Any) -> None:
        await self._redis.publish(channel, message)

    async def announce(self, channel: str, message: str) -> int | None:
        return await self._redis.publish(channel, message)

    async def publish_many(self, messages: list[tuple[str, str]]) -> None:
        """One round trip for all of them (a pipeline, not a transaction)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, message in messages:
                pipe.publish(channel, message)
            await pipe.execute()

    async def ping(self) -> None:
        await self._redis.ping()

    async def _listen(self) -> None:
        backoff = 0.1
        lost = False
        while True:
            try:
                if lost:
                    await self._redis.ping()
                    channels = set(self._channels)
                    if channels:
                        await self._pubsub.subscribe(*channels)
                    logger.warning("event bus reconnected to Redis")
                    lost, backoff = False, 0.1
                    self._set_healthy(True)
                    self._lost_messages()
                if not self._pubsub.subscribed:
                    await asyncio.sleep(0.05)
                    continue
                message = await self._pubsub.get_message(timeout=1.0)
                if message is not None and message.get("type") == "message":
                    self._queue.put_nowait(
                        Event(message["channel"].decode(), message["data"].decode())
                    )
            except _REDIS_LOST as error:
                if not lost:
                    logger.warning("event bus lost Redis (%s); reconnecting", type(error).__name__)
                    self._set_healthy(False)
                lost = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


class PostgresBackend(_Backend):
    """PostgreSQL LISTEN/NOTIFY on a connection of its own, re-established when it drops."""

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__()
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        self._name = f"holdfast-bus:{prefix}"[:63]
        """The listening connections' application_name: how `announce` counts the listeners."""
        self._listen: asyncpg.Connection | None = None
        self._publish: asyncpg.Pool | None = None
        self._watcher: asyncio.Task | None = None
        self._closed = asyncio.Event()

    async def connect(self) -> None:
        self._publish = await asyncpg.create_pool(self._dsn, min_size=1, max_size=4)
        await self._open()
        self._watcher = asyncio.create_task(self._watch(), name="holdfast-bus-postgres")

    async def _open(self) -> None:
        connection = await asyncpg.connect(
            self._dsn, server_settings={"application_name": self._name}
        )
        connection.add_termination_listener(lambda _: self._closed.set())
        for channel in self._channels:
            await connection.add_listener(channel, self._received)
        self._listen = connection
        self._closed.clear()
        self._set_healthy(True)

    def _received(self, _connection, _pid, channel: str, payload: str) -> None:
        self._queue.put_nowait(Event(channel, payload))

    async def _watch(self) -> None:
        backoff = 0.1
        while True:
            await self._closed.wait()
            logger.warning("event bus lost PostgreSQL; reconnecting")
            self._set_healthy(False)
            while True:
                try:
                    await self._open()
                    break
                except (OSError, asyncpg.PostgresError) as error:
                    logger.debug("bus reconnect failed: %s", type(error).__name__)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            backoff = 0.1
            logger.warning("event bus reconnected to PostgreSQL")
            self._lost_messages()

    async def disconnect(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._listen is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await self._listen.close()
        if self._publish is not None:
            await self._publish.close()
        self._set_healthy(False)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await self._listen.add_listener(channel, self._received)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await self._listen.remove_listener(channel, self._received)

    async def publish(self, channel: str, message: Any) -> None:
        await self._publish.execute("SELECT pg_notify($1, $2)", channel, message)

    async def announce(self, channel: str, message: str) -> int | None:
        row = await self._publish.fetchrow(
            "SELECT pg_notify($1, $2), (SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = $3)",
            channel,
            message,
            self._name,
        )
        return row[1]

    async def publish_many(self, messages: list[tuple[str, str]]) -> None:
        channels, payloads = zip(*messages, strict=True)
        await self._publish.execute(
            "SELECT pg_notify(c, m) FROM unnest($1::text[], $2::text[]) AS given(c, m)",
            list(channels),
            list(payloads),
        )

    async def ping(self) -> None:
        await self._publish.fetchval("SELECT 1")


class EventBus:
    """Channels of text messages across every replica (`url` None: this process only)."""

    def __init__(self, url: str | None, prefix: str = "holdfast") -> None:
        self.url = url
        self.prefix = prefix
        scheme = make_url(url).get_backend_name() if url else "memory"
        if scheme in ("redis", "rediss"):
            self.kind = "redis"
            self._backend: _Backend = RedisBackend(url)
        elif scheme in ("postgresql", "postgres"):
            self.kind = "postgres"
            self._backend = PostgresBackend(url, prefix)
        else:
            self.kind = "memory"
            self._backend = MemoryBackend()
        self._broadcast = Broadcast(backend=self._backend)

    @property
    def healthy(self) -> bool:
        return self._backend.healthy

    @property
    def epoch(self) -> int:
        return self._backend.epoch

    async def connect(self) -> None:
        await self._broadcast.connect()

    async def disconnect(self) -> None:
        await self._broadcast.disconnect()

    def _channel(self, channel: str) -> str:
        return f"{self.prefix}:{channel}"

    async def publish(self, channel: str, message: str) -> None:
        await self._broadcast.publish(self._channel(channel), message)

    async def publish_many(self, messages: list[tuple[str, str]]) -> None:
        """Publish in order, in as few round trips as the backend allows."""
        await self._backend.publish_many(
            [(self._channel(channel), message) for channel, message in messages]
        )

    async def announce(self, channel: str, message: str) -> int | None:
        """Publish, and say how many processes (this one included) subscribe to the bus and
        will hear it; None where the bus cannot tell (in-process: only this one)."""
        return await self._backend.announce(self._channel(channel), message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[str | None]]:
        """Messages on `channel`; `None` means some may have been lost (the bus reconnected)."""
        async with self._broadcast.subscribe(self._channel(channel)) as subscriber:

            async def messages() -> AsyncIterator[str | None]:
                while True:
                    event = await subscriber.get()
                    yield event.message

            yield messages()

    async def ping(self) -> None:
        """Raise when the bus's server does not answer."""
        ping = getattr(self._backend, "ping", None)
        if ping is not None:
            await ping()
