"""Runtime settings: typed values admins change while the cluster runs.

Effective value = the environment's, when it pins the setting; else the one stored by an admin;
else the process's start-up value (`holdfast.toml` or default). A change is stored with its
audit entries (resource "setting", one per setting that changed) in one transaction, then
announced on the bus: every replica reloads within moments and pushes the values into its
services through `apply`. A bus that lost messages makes replicas reload too. The SMTP password
is write-only: nothing returns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db import audit as audit_store
from db import settings as store
from db.base import utcnow
from db.engine import Database
from db.identity import User
from db.settings import RuntimeSetting
from domain import audit
from domain.access import require_admin
from domain.bus import EventBus
from domain.errors import BadUserInput

logger = logging.getLogger("holdfast.settings")

CHANNEL = "runtime-settings"
SECRET = "smtp_password"
HIDDEN = "***"


def _int_between(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return value

    return check


def _one_of(*allowed: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return check


def _text(limit: int, pattern: str | None = None) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str) or len(value) > limit:
            raise ValueError(f"must be text of at most {limit} characters")
        if pattern and not re.match(pattern, value):
            raise ValueError("is not in the expected form")
        return value

    return check


DEFINITIONS: dict[str, Callable[[Any], Any]] = {
    "lock_auto_release_hours": _int_between(0, 24 * 365),
    "lock_expiry_warning_minutes": _int_between(0, 24 * 60),
    "access_token_ttl": _int_between(60, 86400),
    "registration": _one_of("open", "closed"),
    "smtp_host": _text(253),
    "smtp_port": _int_between(1, 65535),
    "smtp_username": _text(254),
    "smtp_password": _text(1024),
    "smtp_tls": _one_of("none", "starttls", "tls"),
    "mail_from": _text(254, r"^[^@\s]+@[^@\s]+$"),
    "lock_alerts": _one_of("none", "watchers", "everyone"),
    "force_release_policy": _one_of("admins", "everyone"),
    "event_retention": _int_between(3600, 10 * 365 * 86400),
    "audit_retention_days": _int_between(0, 100 * 365),
    "event_default_minutes": _int_between(1, 7 * 24 * 60),
    "max_active_parkings_per_user": _int_between(1, 1000),
    "parking_reservation_grace_minutes": _int_between(0, 24 * 60),
    "parking_reminder_days": _int_between(0, 3650),
}


@dataclass(frozen=True)
class SettingChange:
    """One setting's change as the audit log has it; values are JSON, secrets hidden."""

    name: str
    old_value: str | None
    new_value: str
    changed_by: str
    at: datetime


@dataclass(frozen=True)
class SettingsView:
    values: dict[str, Any]
    pinned: frozenset[str]
    stored: frozenset[str]


class RuntimeSettings:
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        start_up: dict[str, Any],
        pinned: frozenset[str],
        apply: Callable[[dict[str, Any]], None],
    ) -> None:
        self.db = db
        self.bus = bus
        self.start_up = start_up
        self.pinned = pinned
        self.apply = apply
        self.values = dict(start_up)
        self._stored: frozenset[str] = frozenset()
        self._listener: asyncio.Task | None = None

    async def load(self) -> None:
        """Read what admins stored, and push the effective values into the services."""
        async with self.db.read() as session:
            rows = await store.stored_settings(session)
        values = dict(self.start_up)
        for name, row in rows.items():
            if name in DEFINITIONS and name not in self.pinned:
                values[name] = json.loads(row.value)
        self.values, self._stored = values, frozenset(rows)
        self.apply(values)

    async def start(self) -> None:
        await self.load()
        ready = asyncio.Event()
        self._listener = asyncio.create_task(self._follow(ready), name="holdfast-settings")
        await ready.wait()

    async def _follow(self, ready: asyncio.Event) -> None:
        async with self.bus.subscribe(CHANNEL) as messages:
            ready.set()
            async for _ in messages:
                try:
                    await self.load()
                except Exception:
                    logger.exception("could not reload runtime settings")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    def view(self, actor: User) -> SettingsView:
        require_admin(actor)
        shown = {
            name: (HIDDEN if name == SECRET and value else value)
            for name, value in self.values.items()
        }
        return SettingsView(shown, self.pinned, self._stored)

    async def update(self, actor: User, changes: dict[str, Any]) -> SettingsView:
        """Store the changes (all or none), record who made them, and tell every replica."""
        require_admin(actor)
        checked = {}
        for name, value in changes.items():
            if name not in DEFINITIONS:
                raise BadUserInput(f"there is no setting {name!r}", field=name)
            if name in self.pinned:
                raise BadUserInput(
                    f"{name} is pinned by HOLDFAST_{name.upper()} in the environment",
                    field=name,
                )
            try:
                checked[name] = DEFINITIONS[name](value)
            except ValueError as error:
                raise BadUserInput(f"{name} {error}", field=name) from None
        now = utcnow()
        async with self.db.transaction() as session:
            rows = await store.stored_settings(session)
            for name, value in checked.items():
                old = rows.get(name)
                audit.record(
                    session,
                    actor=actor,
                    action="update",
                    resource_type="setting",
                    resource_id=name,
                    before={name: json.loads(old.value) if old else self.start_up.get(name)},
                    after={name: value},
                )
                if old is None:
                    session.add(
                        RuntimeSetting(
                            name=name, value=json.dumps(value), updated_at=now, updated_by=actor.id
                        )
                    )
                else:
                    old.value, old.updated_at, old.updated_by = json.dumps(value), now, actor.id
        await self.load()
        try:
            await self.bus.publish(CHANNEL, "changed")
        except Exception as error:
            logger.warning("could not announce a settings change: %s", type(error).__name__)
        return self.view(actor)

    async def changes(self, actor: User, first: int) -> list[SettingChange]:
        """The newest setting changes in the audit log (the SMTP password shown as ***)."""
        require_admin(actor)
        if not 0 <= first <= 500:
            raise BadUserInput("first must be between 0 and 500", field="first")
        async with self.db.read() as session:
            entries, _ = await audit_store.page(session, resource_type="setting", limit=first)

        def shown(value: Any) -> str:
            return json.dumps(HIDDEN if value == audit.SECRET_MASK else value)

        found = []
        for entry in entries:
            old, new = json.loads(entry.changes or "{}").get(entry.resource_id, [None, None])
            found.append(
                SettingChange(
                    name=entry.resource_id,
                    old_value=None if old is None else shown(old),
                    new_value=shown(new),
                    changed_by=entry.actor_username or "(system)",
                    at=entry.at,
                )
            )
        return found
