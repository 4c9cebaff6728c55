"""Per-process caches that every replica empties the moment the cached thing changes.

A change is announced on the bus after its commit (and applied here at once); each replica drops
the entries tagged with what changed. Three rules keep an entry from outliving the truth:

- a load that overlapped an announcement is not stored (the `generation` it began in is gone);
- the cache is used only while the bus is connected, and only entries made since its last
  reconnect (it may have missed announcements while away), so a Redis outage means reads from
  the database, not stale answers;
- an entry lives at most `max_age` seconds whatever happens.

And the change is in force everywhere when `forget` returns: every process that hears the
announcement confirms it has dropped the entries, and `forget` waits for as many confirmations
as the bus says there are listeners (up to `ACK_TIMEOUT`; a process that does not confirm by then
is stuck, and is logged). So once a deactivation or a token revocation has answered, no replica
accepts the credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from domain.bus import EventBus

logger = logging.getLogger("holdfast.caches")

ACK_TIMEOUT = 2.0
"""How long `forget` waits for every listening process to confirm."""


@dataclass(frozen=True)
class _Entry:
    value: Any
    tags: frozenset[str]
    epoch: int
    stored_at: float


@dataclass
class _Confirmations:
    expected: int | None = None
    received: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self) -> None:
        if self.expected is not None and self.received >= self.expected:
            self.done.set()


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
        self._waiting: dict[str, _Confirmations] = {}
        self._confirming: set[asyncio.Task] = set()

    async def start(self) -> None:
        ready = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(ready), name=f"holdfast-{self.channel}")
        await ready.wait()

    async def stop(self) -> None:
        for task in list(self._confirming):
            task.cancel()
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
                    continue
                body = orjson.loads(message)
                if "confirms" in body:
                    if (waiting := self._waiting.get(body["confirms"])) is not None:
                        waiting.received += 1
                        waiting.check()
                else:
                    self._drop(body["tags"])
                    self._confirm(body["id"])

    def _confirm(self, announcement: str) -> None:
        task = asyncio.create_task(
            self._publish({"confirms": announcement}), name=f"holdfast-{self.channel}-confirm"
        )
        self._confirming.add(task)
        task.add_done_callback(self._confirming.discard)

    async def _publish(self, body: dict) -> None:
        try:
            await self.bus.publish(self.channel, orjson.dumps(body).decode())
        except Exception as error:
            logger.warning("could not confirm a change to %s: %s", self.channel, error)

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
        """Drop what is tagged so here now, and have every other process drop it (after
        commit): returns once all that listen have confirmed."""
        self._drop(tags)
        announcement = secrets.token_hex(8)
        waiting = self._waiting[announcement] = _Confirmations()
        body = orjson.dumps({"tags": list(tags), "id": announcement}).decode()
        try:
            waiting.expected = await self.bus.announce(self.channel, body)
            waiting.check()
            if waiting.expected:
                await asyncio.wait_for(waiting.done.wait(), ACK_TIMEOUT)
        except TimeoutError:
            logger.warning(
                "%s: %d of %d processes confirmed a change within %.0f s",
                self.channel,
                waiting.received,
                waiting.expected,
                ACK_TIMEOUT,
            )
        except Exception as error:
            # The others' bus is likely down too, and then they do not use their caches.
            logger.warning("could not announce a change to %s: %s", self.channel, error)
        finally:
            del self._waiting[announcement]

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
