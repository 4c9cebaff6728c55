"""What every part of the locks area shares: event kinds, a lock with its owner, the checks
of what callers send."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import SimpleNamespace

from sqlalchemy.ext.asyncio import AsyncSession

from db import locks as store
from db.locks import LOCKS, Lock
from db.projects import Project
from domain.errors import BadUserInput
from domain.paths import normalize_path, path_key
from domain.people import UserRef, missing_user, user_refs
from domain.streams import EventSource

MAX_COMMENT_LENGTH = 500
MAX_BRANCH_LENGTH = 255
MAX_MESSAGE_LENGTH = 500
MAX_BATCH = 1000
DEFAULT_HISTORY_PAGE = 100
MAX_HISTORY_PAGE = 1000


class EventKind(StrEnum):
    ACQUIRED = "ACQUIRED"
    RELEASED = "RELEASED"
    FORCE_RELEASED = "FORCE_RELEASED"
    EXPIRED = "EXPIRED"
    RENEWED = "RENEWED"
    RELEASE_REQUESTED = "RELEASE_REQUESTED"


LOCK_EVENTS = EventSource(scope="locks", table=LOCKS)
WATCHED_KINDS = {"ACQUIRED", "RELEASED", "FORCE_RELEASED", "EXPIRED"}


@dataclass(frozen=True)
class HeldLock:
    """A lock (a stored row, or as its event recorded it) with its owner."""

    lock: Lock | SimpleNamespace
    owner: UserRef


def checked_text(value: str | None, limit: int, field: str) -> str | None:
    if value is None:
        return None
    if len(value) > limit:
        raise BadUserInput(f"{field} must be at most {limit} characters", field=field)
    return value


def checked_paths(raw_paths: Iterable[str]) -> list[str]:
    paths = [normalize_path(raw) for raw in raw_paths]
    if not paths:
        raise BadUserInput("give at least one path", field="paths")
    if len(paths) > MAX_BATCH:
        raise BadUserInput(f"at most {MAX_BATCH} paths at once", field="paths")
    return paths


def is_expired(lock: Lock, now: datetime) -> bool:
    """Past its TTL: it blocks no one, even before the expiry job releases it."""
    return lock.expires_at is not None and lock.expires_at <= now


def by_key(paths: list[str], case_sensitive: bool) -> dict[str, str]:
    """Paths by their key, in order; of paths that differ only in case the first is kept."""
    keys: dict[str, str] = {}
    for path in paths:
        keys.setdefault(path_key(path, case_sensitive), path)
    return keys


def lock_of(event) -> SimpleNamespace:
    """The lock as an event recorded it (a record with a lock's attributes)."""
    return SimpleNamespace(
        id=event.lock_id,
        path=event.path,
        owner_id=event.owner_id,
        branch=event.branch,
        comment=event.comment,
        acquired_at=event.acquired_at,
        expires_at=event.expires_at,
        fencing_token=event.fencing_token,
    )


async def locks_by_key(
    session: AsyncSession, project: Project, paths: list[str]
) -> tuple[dict[str, str], dict[str, Lock]]:
    """The paths by key, and the locks held on those keys (expired ones included)."""
    keys = by_key(paths, project.case_sensitive)
    locks = await store.locks_on_keys(session, project.id, list(keys))
    return keys, {lock.path_key: lock for lock in locks}


async def with_owners(session: AsyncSession, locks: list[Lock]) -> list[HeldLock]:
    owners = await user_refs(session, {lock.owner_id for lock in locks})
    return [
        HeldLock(lock, owners.get(lock.owner_id) or missing_user(lock.owner_id)) for lock in locks
    ]
