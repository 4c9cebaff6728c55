"""Reading locks: one lock, the status of paths, pages of a project's locks, history, and the
live feed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

from db import locks as store
from db.base import utcnow
from db.engine import Database
from db.identity import get_user_by_username
from db.projects import Project
from domain.errors import BadUserInput, NotFound
from domain.feeds import Feeds
from domain.locks.records import (
    DEFAULT_HISTORY_PAGE,
    LOCK_EVENTS,
    MAX_HISTORY_PAGE,
    HeldLock,
    checked_paths,
    is_expired,
    with_owners,
)
from domain.pagination import Page, decode_cursor, encode_cursor, page_size
from domain.paths import normalize_prefix, path_key
from domain.people import UserRef
from domain.projects import Projects, ProjectState, project_state
from domain.streams import Change, check_since


def _owner(row) -> UserRef:
    """The owner of a listed lock, from the columns the list query joins in."""
    return UserRef(row.owner_id, row.owner_username, row.owner_role, row.owner_active)


class LockReads:
    """The reading half of `Locks` (domain/locks/__init__.py sets these)."""

    db: Database
    projects: Projects
    feeds: Feeds

    async def version(self, slug: str) -> tuple[tuple, float] | None:
        """What the project's locks as listed depend on, and until when (a POSIX time) that
        holds; None when there is nothing to keep (no such project, a lock expiring now)."""
        try:
            project = await self.projects.cached(slug)
        except NotFound:
            return None
        seq, expiry = await store.stream_version(self.db, project.stream_id, project.id)
        until = expiry.timestamp() if expiry is not None else float("inf")
        if until <= utcnow().timestamp():
            return None
        return (project.stream_id, seq), until

    async def get(self, slug: str, lock_id: int) -> tuple[ProjectState, HeldLock | None]:
        """The live lock with this id in the project, or None."""
        now = utcnow()
        async with self.db.read() as session:
            state = await project_state(session, slug)
            lock = await store.get_lock(session, state.project.id, lock_id)
            if lock is None or is_expired(lock, now):
                return state, None
            [held] = await with_owners(session, [lock])
        return state, held

    async def status(
        self, slug: str, raw_paths: list[str]
    ) -> tuple[ProjectState, list[HeldLock | None]]:
        """The lock on each path, in order (None where free)."""
        paths = checked_paths(raw_paths)
        now = utcnow()
        async with self.db.read() as session:
            state = await project_state(session, slug)
            project = state.project
            keys = [path_key(path, project.case_sensitive) for path in paths]
            locks = [
                lock
                for lock in await store.locks_on_keys(session, project.id, keys)
                if not is_expired(lock, now)
            ]
            held = {entry.lock.path_key: entry for entry in await with_owners(session, locks)}
        return state, [held.get(key) for key in keys]

    async def list(
        self,
        slug: str,
        *,
        path_prefix: str | None = None,
        owner: str | None = None,
        branch: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> tuple[ProjectState, Page[HeldLock]]:
        limit = page_size(first)
        after_id = decode_cursor("lock", after)
        now = utcnow()
        async with self.db.read() as session:
            state = await project_state(session, slug)
            project = state.project
            owner_id = None
            if owner is not None:
                user = await get_user_by_username(session, owner)
                if user is None:
                    return state, Page(items=[], cursors=[], total=0, has_next=False)
                owner_id = user.id
            prefix = normalize_prefix(path_prefix) if path_prefix else None
            rows, total = await store.page_of_locks(
                session,
                project.id,
                now=now,
                key_prefix=path_key(prefix, project.case_sensitive) if prefix else None,
                owner_id=owner_id,
                branch=branch,
                after_id=after_id,
                limit=limit + 1,
            )
        held = [HeldLock(row, _owner(row)) for row in rows[:limit]]
        return state, Page(
            items=held,
            cursors=[encode_cursor("lock", entry.lock.id) for entry in held],
            total=total,
            has_next=len(rows) > limit,
        )

    async def history(
        self, slug: str, since: int | None, first: int | None
    ) -> tuple[ProjectState, list[Change]]:
        if first is not None and not 0 <= first <= MAX_HISTORY_PAGE:
            raise BadUserInput(f"first must be between 0 and {MAX_HISTORY_PAGE}", field="first")
        async with self.db.read() as session:
            state = await project_state(session, slug)
            check_since(since, state.purged_through_seq, "locks")
            changes = await LOCK_EVENTS.stored(
                session,
                state.project.stream_id,
                since or 0,
                limit=DEFAULT_HISTORY_PAGE if first is None else first,
            )
        if since is not None and changes and changes[0].seq != since + 1:
            check_since(since, changes[0].seq - 1, "locks")  # purged after the check above
        return state, changes

    async def follow(
        self,
        slug: str,
        *,
        path_prefix: str | None = None,
        since: int | None = None,
        until: datetime | None = None,
        recheck: Callable[[], Awaitable[None]] | None = None,
        on_overflow: Callable[[], Awaitable[None]] | None = None,
        on_joined: Callable[[], None] | None = None,
    ) -> tuple[Project, AsyncIterator[Change]]:
        """The project and its live changes (after `since`, stored ones first)."""
        prefix = normalize_prefix(path_prefix) if path_prefix else None
        project = await self.projects.cached(slug)
        accept = None
        if prefix:
            key = path_key(prefix, project.case_sensitive)

            def accept(change: Change) -> bool:
                return path_key(change.event.path, project.case_sensitive).startswith(key)

        changes = self.feeds.follow(
            LOCK_EVENTS,
            project.stream_id,
            since,
            accept=accept,
            until=until,
            recheck=recheck,
            on_overflow=on_overflow,
            on_joined=on_joined,
            what="locks",
        )
        return project, changes
