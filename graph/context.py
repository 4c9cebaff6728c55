"""Per-request context: the services, who is calling, and a request id for logs and errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from db.identity import User
from domain.assets import Assets, GpuHolds
from domain.assets.workbook import AssetWorkbook
from domain.audit import AuditLog
from domain.caches import SharedCache
from domain.errors import BadUserInput, DomainError, Unauthenticated
from domain.files import Files
from domain.holds import Holds
from domain.identity import Identity, Principal
from domain.jobs import Jobs
from domain.locks import Locks
from domain.notify import Notifier
from domain.parking import Parking
from domain.parking.jobs import ParkingJobs
from domain.parts import Parts
from domain.parts.files import PartFiles
from domain.projects import Projects
from domain.settings import RuntimeSettings
from domain.transfers import Transfers
from domain.venues import Venues

RECHECK_SECONDS = 1.0
SLOW_SUBSCRIBER_CLOSE_CODE = 1013
CLOSE_TIMEOUT_SECONDS = 2.0


@dataclass
class Services:
    """Everything a resolver may call, built once per process by the server."""

    identity: Identity
    projects: Projects
    locks: Locks
    holds: Holds
    assets: Assets
    gpus: GpuHolds
    parts: Parts
    part_files: PartFiles
    venues: Venues
    parking: Parking
    parking_jobs: ParkingJobs
    jobs: Jobs
    files: Files
    transfers: Transfers
    asset_workbook: AssetWorkbook
    notifier: Notifier
    settings: RuntimeSettings
    audit: AuditLog
    caches: tuple[SharedCache, ...] = ()


@dataclass
class Context:
    services: Services
    request: Any
    request_id: str
    client_address: str | None
    """The caller's address, behind trusted proxies (server.origin)."""
    authorization: str | None = None
    """The raw `Authorization` value: a header, or a websocket's connection_init payload."""
    connection_params: dict[str, Any] | None = None
    long_lived: bool = False
    """A websocket's context outlives its operations: the caller is checked again for each."""
    loaders: dict[str, Any] = field(default_factory=dict)
    """The request's DataLoaders, by area (e.g. graph/assets/loaders.py)."""
    joining: asyncio.Event | None = None
    """Set by the websocket handler while a subscription starts (see subscription_joined)."""
    _principal: Principal | None = field(default=None, repr=False)
    _refused: DomainError | None = field(default=None, repr=False)
    _checked_at: float | None = field(default=None, repr=False)

    def subscription_joined(self) -> Callable[[], None] | None:
        """What a subscription calls once it has its place in its stream's feed: the
        websocket handler waits for that before it reads the client's next message, so a
        client that hears back (a pong) after subscribing misses no later change."""
        event = self.joining
        return None if event is None else event.set

    async def viewer(self) -> User | None:
        """The caller, or None without credentials; a bad credential is UNAUTHENTICATED."""
        now = time.monotonic()
        stale = self._checked_at is None or (
            self.long_lived and now - self._checked_at > RECHECK_SECONDS
        )
        if stale:
            self._principal, self._refused = None, None
            try:
                bearer = bearer_token(self.authorization)
                if bearer is not None:
                    self._principal = await self.services.identity.authenticate(bearer)
            except DomainError as error:
                self._refused = error
            self._checked_at = now
        return self.known_viewer()

    def known_viewer(self) -> User | None:
        """The caller as last checked, without waiting: every HTTP request is checked as it
        arrives, and a websocket's before each of its operations, so resolvers with nothing
        else to wait for can stay synchronous."""
        if self._refused is not None:
            raise self._refused
        return self._principal.user if self._principal else None

    async def recheck(self) -> None:
        """Raise UNAUTHENTICATED if the caller's credential no longer holds."""
        self._checked_at = None
        await self.require_viewer()

    @property
    def credential_expires_at(self) -> datetime | None:
        """When the caller's credential stops working (subscriptions end then)."""
        return self._principal.expires_at if self._principal else None

    def live_options(self) -> dict[str, Any]:
        """What every subscription's feed needs of its connection: when the credential ends,
        how to check it again, how to drop a subscriber too slow to keep up (close code 1013,
        "try again later": reconnect with since), and what to tell once it has joined."""
        return {
            "until": self.credential_expires_at,
            "recheck": self.recheck,
            "on_overflow": lambda: self.close_connection(
                SLOW_SUBSCRIBER_CLOSE_CODE, "too slow: reconnect with since"
            ),
            "on_joined": self.subscription_joined(),
        }

    async def close_connection(self, code: int, reason: str) -> None:
        """Close the websocket this operation runs on (no-op over HTTP).

        A client that stopped reading never lets the close frame out: then the connection is
        aborted, so its buffers are freed.
        """
        close = getattr(self.request, "close", None)
        if close is None:
            return
        try:
            await asyncio.wait_for(close(code=code, reason=reason), CLOSE_TIMEOUT_SECONDS)
        except Exception:
            abort = self.request.scope.get("state", {}).get("abort_connection")
            if abort is not None:
                abort()

    async def require_viewer(self) -> User:
        viewer = await self.viewer()
        if viewer is None:
            raise Unauthenticated("sign in first: send Authorization: Bearer <token>")
        return viewer


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` value; None when absent."""
    if header is None or header == "":
        return None
    if not isinstance(header, str):
        raise Unauthenticated("Authorization must be a string: 'Bearer <token>'")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


MAX_ID = 2**31 - 1
"""Ids are 32-bit database keys."""


def decode_id(value: str, field: str = "id") -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadUserInput(f"{field} is not a valid id", field=field) from None
    if not 0 < number <= MAX_ID:
        raise BadUserInput(f"{field} is not a valid id", field=field)
    return number
