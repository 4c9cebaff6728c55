"""Login throttling with the `limits` library: Redis storage across replicas, else memory."""

import math
import time

from limits import parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from domain.errors import RateLimited


def limits_storage(redis_url: str | None, redis_prefix: str) -> Storage:
    if redis_url is None:
        return MemoryStorage()
    scheme, rest = redis_url.split("://", 1)
    return RedisStorage(
        f"async+{scheme}://{rest}", implementation="redispy", key_prefix=f"{redis_prefix}:limits"
    )


class LoginThrottle:
    """Counts every login attempt per username and per client address."""

    def __init__(self, storage: Storage, rate: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._rates = parse_many(rate)

    async def hit(self, username: str, address: str | None) -> None:
        """Count an attempt; RATE_LIMITED when one too many were made."""
        keys = [("login-user", username.lower())]
        if address:
            keys.append(("login-address", address))
        retry_after = 0
        for rate in self._rates:
            for kind, value in keys:
                if not await self._limiter.hit(rate, kind, value):
                    stats = await self._limiter.get_window_stats(rate, kind, value)
                    retry_after = max(retry_after, math.ceil(stats.reset_time - time.time()), 1)
        if retry_after:
            raise RateLimited(
                f"too many login attempts; try again in {retry_after} s", retry_after=retry_after
            )
