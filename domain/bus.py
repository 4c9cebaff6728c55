"""The event bus: Redis pub/sub across replicas, or in-process for the embedded default.

Our own thin layer on redis-py rather than broadcaster: broadcaster 0.3.1 (unmaintained) loses
every message with redis-py 8 and never recovers from a Redis restart. Here one listener per
process reads Redis and fans out to local queues; when the connection drops it reconnects with
backoff, re-subscribes, and hands every subscriber `None` — "you may have missed messages" — so
it can fill the gap from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger("holdfast.bus")

MAX_BACKOFF_SECONDS = 5.0
_LOST = (RedisConnectionError, RedisTimeoutError, OSError)


class EventBus:
    def __init__(self, redis_url: str | None, prefix: str = "holdfast") -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self._queues: dict[str, set[asyncio.Queue[str | None]]] = {}
        self._redis = redis.Redis.from_url(redis_url) if redis_url else None
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True) if self._redis else None
        self._listener: asyncio.Task | None = None

    async def connect(self) -> None:
        if self._redis is not None:
            await self._redis.ping()
            self._listener = asyncio.create_task(self._listen(), name="holdfast-bus")

    async def disconnect(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, *_LOST):
                await self._listener
        if self._pubsub is not None:
            with contextlib.suppress(*_LOST):
                await self._pubsub.aclose()
        if self._redis is not None:
            await self._redis.aclose()

    async def publish(self, channel: str, message: str) -> None:
        if self._redis is None:
            self._dispatch(channel, message)
        else:
            await self._redis.publish(f"{self.prefix}:{channel}", message)

    def _dispatch(self, channel: str, message: str | None) -> None:
        for queue in list(self._queues.get(channel, ())):
            queue.put_nowait(message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[str | None]]:
        """Messages on `channel`; `None` means some may have been lost (Redis reconnected)."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        first = not self._queues.get(channel)
        self._queues.setdefault(channel, set()).add(queue)
        try:
            if first and self._pubsub is not None:
                await self._pubsub.subscribe(f"{self.prefix}:{channel}")

            async def messages() -> AsyncIterator[str | None]:
                while True:
                    yield await queue.get()

            yield messages()
        finally:
            self._queues[channel].discard(queue)
            if not self._queues[channel]:
                del self._queues[channel]
                if self._pubsub is not None:
                    with contextlib.suppress(*_LOST):
                        await self._pubsub.unsubscribe(f"{self.prefix}:{channel}")

    async def _listen(self) -> None:
        prefix = f"{self.prefix}:"
        backoff = 0.1
        lost = False
        while True:
            try:
                if not self._pubsub.subscribed:
                    await asyncio.sleep(0.1)
                    continue
                message = await self._pubsub.get_message(timeout=1.0)
                if lost:
                    logger.warning("event bus reconnected to Redis")
                    lost, backoff = False, 0.1
                    for channel in list(self._queues):
                        self._dispatch(channel, None)
                if message is None or message.get("type") != "message":
                    continue
                channel = message["channel"].decode()
                if channel.startswith(prefix):
                    self._dispatch(channel[len(prefix) :], message["data"].decode())
            except _LOST as error:
                if not lost:
                    logger.warning("event bus lost Redis (%s); reconnecting", type(error).__name__)
                lost = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def ping(self) -> None:
        """Raise when the bus's Redis does not answer."""
        if self._redis is not None:
            await self._redis.ping()
