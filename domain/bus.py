"""The event bus: Redis pub/sub across replicas, or in-process for the embedded default."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis
from broadcaster import Broadcast


class EventBus:
    def __init__(self, redis_url: str | None, prefix: str = "holdfast") -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self._broadcast = Broadcast(redis_url or "memory://")
        self._redis = redis.Redis.from_url(redis_url) if redis_url else None

    async def connect(self) -> None:
        await self._broadcast.connect()

    async def disconnect(self) -> None:
        await self._broadcast.disconnect()
        if self._redis is not None:
            await self._redis.aclose()

    async def publish(self, channel: str, message: str) -> None:
        await self._broadcast.publish(channel=f"{self.prefix}:{channel}", message=message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[str]]:
        async with self._broadcast.subscribe(channel=f"{self.prefix}:{channel}") as subscriber:

            async def messages() -> AsyncIterator[str]:
                async for event in subscriber:
                    yield event.message

            yield messages()

    async def ping(self) -> None:
        """Raise when the bus's Redis does not answer."""
        if self._redis is not None:
            await self._redis.ping()
