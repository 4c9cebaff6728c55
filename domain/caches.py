"""Per-process caches that every replica empties the moment the cached thing changes.

A change is announced on the bus after its commit (and applied here at once); each replica drops
the entries tagged with what changed. Three rules keep an entry from outliving the truth:

- a load that overlapped an announcement is not stored (the `generation` it began in is gone);
- the cache is used only while the bus is connected, and only entries made since its last
  reconnect (it may have missed announcements while away), so a Redis outage means reads from
  the database, not stale answers;
- an entry lives at most `max_age` seconds whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from domain.bus import EventBus

logger = logging.getLogger("holdfast.caches")


@dataclass(frozen=True)
class _Entry:
    value: Any
    tags: frozenset[str]
    epoch: int
    stored_at: float


class SharedCache:
    def __init__(
        self, bus: EventBus, name: str, *, max_entries: int = 20_000, max_age: float = 60.0
    ) -> None:
        self.bus = bus
        self.channel = f"cache:{name}"
        self.max_entries = max_entries
        self.max_age = max_age
        self.generation = 0
        self._entries: dict[Hashable, _Entry] = {}
        self._keys_by_tag: dict[str, set[Hashable]] = {}
        self._listener: asyncio.Task | None = None

    async def start(self) -> None:
        ready = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(ready), name=f"holdfast-{self.channel}")
        await ready.wait()

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    async def _listen(self, ready: asyncio.Event) -> None:
        async with self.bus.subscribe(self.channel) as messages:
            ready.set()
            async for message in messages:
                if message is None:
                    self.clear()
                else:
                    self._drop(orjson.loads(message))

    def get(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if (
            not self.bus.healthy
            or entry.epoch != self.bus.epoch
            or time.monotonic() - entry.stored_at > self.max_age
        ):
            self._remove(key)
            return None
        return entry.value

    def put(self, key: Hashable, value: Any, tags: Iterable[str], generation: int) -> None:
        """Keep `value` unless something was forgotten since `generation` was read."""
        if generation != self.generation or not self.bus.healthy:
            return
        if len(self._entries) >= self.max_entries:
            self.clear()
        self._remove(key)
        entry = _Entry(value, frozenset(tags), self.bus.epoch, time.monotonic())
        self._entries[key] = entry
        for tag in entry.tags:
            self._keys_by_tag.setdefault(tag, set()).add(key)

    async def forget(self, *tags: str) -> None:
        """Drop what is tagged so here now, and tell every other replica to (after commit)."""
        self._drop(tags)
        try:
            await self.bus.publish(self.channel, orjson.dumps(list(tags)).decode())
        except Exception as error:
            # The others' bus is likely down too, and then they do not use their caches.
            logger.warning("could not announce a change to %s: %s", self.channel, error)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._keys_by_tag.clear()

    def _drop(self, tags: Iterable[str]) -> None:
        self.generation += 1
        for tag in tags:
            for key in self._keys_by_tag.pop(tag, ()):
                self._remove(key)

    def _remove(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for tag in entry.tags:
            keys = self._keys_by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys_by_tag[tag]
