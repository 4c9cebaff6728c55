"""Sign-in limits with the `limits` library's storage: Redis across replicas, else memory.

Failed sign-ins count per account and per client address, in fixed windows. Each attempt
reserves a failure on both *before* the password is checked — so a burst of parallel guesses
cannot all pass before the first failure is recorded — and a success gives the reservation
back. Colleagues signing in from one office address (one NAT, one reverse proxy) therefore
never use up each other's allowance, while guessing one account's password, or trying many
accounts from one address, is stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage

from domain.errors import RateLimited


def limits_storage(redis_url: str | None, redis_prefix: str) -> Storage:
    if redis_url is None:
        return MemoryStorage()
    scheme, rest = redis_url.split("://", 1)
    return RedisStorage(
        f"async+{scheme}://{rest}", implementation="redispy", key_prefix=f"{redis_prefix}:limits"
    )


def _key(kind: str, value: str, item: RateLimitItem) -> str:
    return f"{kind}:{value}:{item.amount}/{item.get_expiry()}"


@dataclass
class Attempt:
    """A sign-in attempt that counts as failed unless `succeeded` is called."""

    storage: Storage
    reserved: list[tuple[str, int]] = field(default_factory=list)

    async def succeeded(self) -> None:
        for key, expiry in self.reserved:
            await self.storage.incr(key, expiry, -1)
        self.reserved.clear()


class LoginThrottle:
    def __init__(self, storage: Storage, account_rate: str, address_rate: str) -> None:
        self._storage = storage
        self._account = parse_many(account_rate)
        self._address = parse_many(address_rate)

    def _counters(self, username: str, address: str | None, prefix: str = ""):
        for item in self._account:
            yield _key(f"{prefix}login-user", username.lower(), item), item
        if address:
            for item in self._address:
                yield _key(f"{prefix}login-address", address, item), item

    async def _reserve(self, counters) -> Attempt:
        attempt = Attempt(self._storage)
        retry_after = 0
        for key, item in counters:
            count = await self._storage.incr(key, item.get_expiry())
            attempt.reserved.append((key, item.get_expiry()))
            if count > item.amount:
                reset = await self._storage.get_expiry(key)
                retry_after = max(retry_after, math.ceil(reset - time.time()), 1)
        if retry_after:
            await attempt.succeeded()  # a refused attempt checks nothing: it does not count
            raise RateLimited(
                f"too many failed sign-ins; try again in {retry_after} s",
                retry_after=retry_after,
            )
        return attempt

    async def attempt(self, username: str, address: str | None) -> Attempt:
        """Reserve a failed sign-in for the account and the address; RATE_LIMITED when either
        has none left."""
        return await self._reserve(self._counters(username, address))

    async def hit(self, purpose: str, key: str, address: str | None) -> None:
        """Count an attempt at something else worth limiting (registering, asking for reset
        links), every one of them, per key and address."""
        await self._reserve(self._counters(key, address, prefix=f"{purpose}-"))
