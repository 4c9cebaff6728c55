"""The audit log: who changed what, from where, and each field before and after.

Every area records its data changes with `record`, inside the transaction of the change, so an
entry exists exactly when the change committed. Where the request came from (client address,
request id) is read from `ORIGIN`, which the server sets for every HTTP request and websocket;
outside a request (jobs, start-up) it is None. The log is append-only: nothing changes an
entry, and only the retention purge (`AuditLog.purge`) removes old ones.

Secrets never enter the log. A field whose name looks like one (password, secret, token, hash,
authorization, credential, API or private key), at any depth, is masked rather than dropped,
so the log says that it changed and never what it is: a new password is recorded as
`{"password": ["(secret)", "(secret)"]}`, one set where there was none as
`[null, "(secret)"]`.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from db import audit as store
from db.audit import AuditEntry
from db.base import utcnow
from db.engine import Database
from db.identity import User
from domain.access import is_admin
from domain.errors import BadUserInput
from domain.pagination import Page, decode_cursor, encode_cursor, page_size
from domain.people import UserRef, missing_user, user_refs

SECRET_MASK = "(secret)"
SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)|secret|token|hash|authori[sz]ation|credential|api_?key|private_?key",
    re.IGNORECASE,
)
MAX_ADDRESS_LENGTH = 255
CURSOR_KIND = "audit"


@dataclass(frozen=True)
class Origin:
    """Where the current request came from."""

    client_address: str | None
    request_id: str | None


ORIGIN: ContextVar[Origin | None] = ContextVar("holdfast_audit_origin", default=None)
"""Set by the server around each HTTP request and websocket connection."""


def columns(row: Any, *names: str) -> dict[str, Any]:
    """A model row's column values by attribute name (only `names`, when given), for
    `before`/`after`: take it before changing the row."""
    wanted = names or tuple(attribute.key for attribute in inspect(row).mapper.column_attrs)
    return {name: getattr(row, name) for name in wanted}


def _plain(value: Any) -> Any:
    """A JSON-safe copy of `value`."""
    if isinstance(value, Enum):
        return _plain(value.value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((_plain(item) for item in value), key=repr)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return f"({len(value)} bytes)"
    return str(value)


def _masked(name: str, value: Any) -> Any:
    """`value` (plain) as the log may keep it under the field `name`."""
    if SECRET_NAME.search(name):
        return None if value is None else SECRET_MASK
    if isinstance(value, dict):
        return {key: _masked(key, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked("", item) for item in value]
    return value


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list]:
    names = [*before, *(name for name in after if name not in before)]
    return {
        name: [_masked(name, before.get(name)), _masked(name, after.get(name))]
        for name in names
        if before.get(name) != after.get(name)
    }


def record(
    session: AsyncSession,
    *,
    actor: User | UserRef | None,
    action: str,
    resource_type: str,
    resource_id: str | int,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    """Add an entry to the caller's transaction (it commits or rolls back with the change).

    `actor` None is the system. With both `before` and `after`, `changes` holds the fields
    that differ (an "update" that changed nothing records nothing); with `after` only (a
    create), every field given that is not null, as [null, value]; with `before` only (a
    delete, or a verb that removes, like a force-release), `snapshot` holds the whole of it.
    """
    old = None if before is None else _plain(before)
    new = None if after is None else _plain(after)
    changes = snapshot = None
    if old is not None and new is not None:
        changes = _diff(old, new)
        if not changes and action == "update":
            return
    elif new is not None:
        changes = {
            name: [None, _masked(name, value)] for name, value in new.items() if value is not None
        }
    elif old is not None:
        snapshot = {name: _masked(name, value) for name, value in old.items()}
    origin = ORIGIN.get()
    address = origin.client_address if origin else None
    session.add(
        AuditEntry(
            at=utcnow(),
            actor_id=getattr(actor, "id", None),
            actor_username=getattr(actor, "username", None),
            action=action,
            resource_type=resource_type,
            resource_id=str(resource_id),
            changes=None if not changes else json.dumps(changes),
            snapshot=None if snapshot is None else json.dumps(snapshot),
            client_address=address[:MAX_ADDRESS_LENGTH] if address else None,
            request_id=origin.request_id if origin else None,
        )
    )


@dataclass(frozen=True)
class Entry:
    """An entry as read, with its actor as they are now (None: the system)."""

    row: AuditEntry
    actor: UserRef | None

    @property
    def changes(self) -> Any:
        return None if self.row.changes is None else json.loads(self.row.changes)

    @property
    def snapshot(self) -> Any:
        return None if self.row.snapshot is None else json.loads(self.row.snapshot)


class AuditLog:
    """Reading the log, and its retention."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def entries(
        self,
        viewer: User,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Page[Entry]:
        """Newest first, `since` ≤ at ≤ `until`; `actor` is a username. Admins see every
        entry, others only their own acts."""
        limit = page_size(first)
        before_id = decode_cursor(CURSOR_KIND, after)
        for field, moment in (("from", since), ("to", until)):
            if moment is not None and moment.tzinfo is None:
                raise BadUserInput(f"{field} needs a UTC offset", field=field)
        if since is not None and until is not None and since > until:
            raise BadUserInput("from must not be later than to", field="from")
        async with self.db.read() as session:
            rows, total = await store.page(
                session,
                resource_type=resource_type,
                resource_id=resource_id,
                actor_id=None if is_admin(viewer) else viewer.id,
                actor_username=actor,
                since=since,
                until=until,
                before_id=before_id,
                limit=limit + 1,
            )
            people = await user_refs(session, {row.actor_id for row in rows} - {None})
        shown = rows[:limit]
        return Page(
            items=[
                Entry(
                    row,
                    None
                    if row.actor_id is None
                    else people.get(row.actor_id) or missing_user(row.actor_id, row.actor_username),
                )
                for row in shown
            ],
            cursors=[encode_cursor(CURSOR_KIND, row.id) for row in shown],
            total=total,
            has_next=len(rows) > limit,
        )

    async def purge(self, retention_days: int) -> int:
        """Remove entries older than `retention_days` (0: keep them forever)."""
        if retention_days <= 0:
            return 0
        async with self.db.transaction() as session:
            return await store.purge_before(session, utcnow() - timedelta(days=retention_days))
