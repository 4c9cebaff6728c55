"""Locks: who holds which path of a project, and every change as a gapless event log.

Every write takes the project's row lock first (`SELECT … FOR UPDATE`; on SQLite the database
lock), so writers of one project queue, seqs and fencing tokens follow commit order, and a
rollback gives its numbers back. Each change is written as a `LockEvent` in the same
transaction and published on the bus only after commit.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from db import locks as store
from db import projects as project_store
from db.base import utcnow
from db.engine import Database, try_cluster_lock
from db.identity import User, get_user_by_username, get_users, lock_user
from db.locks import Lock, LockEvent
from db.projects import Project
from domain.errors import BadUserInput, Conflict, Forbidden, NotFound, Unauthenticated
from domain.identity import Role
from domain.lock_feed import LockChange, LockFeeds, UserRef, missing_user, user_refs
from domain.mails import expiry_warning
from domain.notify import Notifier
from domain.pagination import Page, decode_cursor, encode_cursor, page_size
from domain.paths import normalize_path, normalize_prefix, path_key
from domain.projects import ForceReleasePolicy, find_project, validate_ttl

logger = logging.getLogger("holdfast.locks")
T = TypeVar("T")

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


@dataclass(frozen=True)
class HeldLock:
    """A lock with its owner, as queries and mutations return it."""

    lock: Lock
    owner: UserRef


def _text(value: str | None, limit: int, field: str) -> str | None:
    if value is None:
        return None
    if len(value) > limit:
        raise BadUserInput(f"{field} must be at most {limit} characters", field=field)
    return value


def _paths(raw_paths: Iterable[str]) -> list[str]:
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


async def _locks_by_key(
    session: AsyncSession, project: Project, paths: list[str]
) -> tuple[dict[str, str], dict[str, Lock]]:
    """The paths by key, and the locks held on those keys (expired ones included)."""
    keys = by_key(paths, project.case_sensitive)
    locks = await store.locks_on_keys(session, project.id, list(keys))
    return keys, {lock.path_key: lock for lock in locks}


class Locks:
    def __init__(self, db: Database, feeds: LockFeeds, notifier: Notifier | None = None) -> None:
        self.db = db
        self.feeds = feeds
        self.notifier = notifier
        self.force_release_by_anyone = False
        """Cluster-wide runtime setting; a project may also allow it on its own."""

    # -- writing ---------------------------------------------------------------------------

    async def _write(
        self,
        slug: str,
        work: Callable[[AsyncSession, Project, datetime], Awaitable[tuple[list[LockChange], T]]],
        *,
        actor: User,
        writable: bool = True,
    ) -> tuple[Project, T]:
        """Run `work` under the project's row lock in one transaction; publish after commit.

        The actor's row is share-locked first (before the project: one lock order everywhere)
        and must still be active, so a deactivation and the user's own writes never interleave.
        Returns the project as the transaction left it, and what `work` returned.
        """
        async with self.db.transaction() as session:
            current = await lock_user(session, actor.id, exclusive=False)
            if current is None or not current.active:
                raise Unauthenticated("your account is no longer active")
            project = await find_project(session, slug, for_update=True)
            if writable and project.archived_at is not None:
                raise Conflict(f"the project {project.slug!r} is archived", field="project")
            changes, result = await work(session, project, utcnow())
            if self.notifier is not None:
                await self.notifier.lock_changes(session, project, changes)
        await self.feeds.publish(project.id, changes)
        return project, result

    @staticmethod
    def record(
        session: AsyncSession,
        project: Project,
        kind: EventKind,
        lock: Lock,
        owner: UserRef,
        actor: UserRef | None,
        at: datetime,
        message: str | None = None,
    ) -> LockChange:
        """Write one event with the project's next seq (its row must be locked)."""
        project.last_seq += 1
        event = LockEvent(
            project_id=project.id,
            seq=project.last_seq,
            kind=kind.value,
            lock_id=lock.id,
            path=lock.path,
            owner_id=owner.id,
            owner_username=owner.username,
            branch=lock.branch,
            comment=lock.comment,
            acquired_at=lock.acquired_at,
            expires_at=lock.expires_at,
            fencing_token=lock.fencing_token,
            actor_id=actor.id if actor else None,
            actor_username=actor.username if actor else None,
            message=message,
            at=at,
        )
        session.add(event)
        return LockChange(event=event, owner=owner, actor=actor)

    async def _release(
        self,
        session: AsyncSession,
        project: Project,
        locks: list[Lock],
        kind: EventKind,
        actor: UserRef | None,
        now: datetime,
        message: str | Callable[[Lock], str] | None = None,
    ) -> list[LockChange]:
        """Record `kind` for each lock and delete it (the project's row must be locked)."""
        owners = await user_refs(session, {lock.owner_id for lock in locks})
        changes = []
        for lock in locks:
            owner = owners.get(lock.owner_id) or missing_user(lock.owner_id)
            text = message(lock) if callable(message) else message
            changes.append(self.record(session, project, kind, lock, owner, actor, now, text))
            await session.delete(lock)
        await session.flush()
        return changes

    async def acquire(
        self,
        actor: User,
        slug: str,
        raw_paths: list[str],
        *,
        comment: str | None = None,
        branch: str | None = None,
        ttl_seconds: int | None = None,
    ) -> tuple[Project, list[HeldLock]]:
        """Take every path or none; paths the actor holds already are returned as they are."""
        paths = _paths(raw_paths)
        comment = _text(comment, MAX_COMMENT_LENGTH, "comment")
        branch = _text(branch, MAX_BRANCH_LENGTH, "branch")
        validate_ttl(ttl_seconds)
        me = UserRef.of(actor)

        async def work(session, project, now):
            keys, existing = await _locks_by_key(session, project, paths)
            expired = [lock for lock in existing.values() if is_expired(lock, now)]
            changes = await self._release(session, project, expired, EventKind.EXPIRED, None, now)
            for lock in expired:
                del existing[lock.path_key]
            conflicts = [lock for lock in existing.values() if lock.owner_id != actor.id]
            if conflicts:
                owners = await user_refs(session, {lock.owner_id for lock in conflicts})
                holders = [
                    {
                        "path": lock.path,
                        "username": (
                            owners.get(lock.owner_id) or missing_user(lock.owner_id)
                        ).username,
                        "acquiredAt": lock.acquired_at.isoformat(),
                    }
                    for lock in sorted(conflicts, key=lambda lock: lock.path)
                ]
                names = ", ".join(f"{h['path']} (held by {h['username']})" for h in holders)
                raise Conflict(f"already locked: {names}", holders=holders)
            ttl = ttl_seconds or project.default_ttl_seconds
            result = {}
            for key, path in keys.items():
                if key in existing:
                    result[key] = existing[key]
                    continue
                project.last_fencing_token += 1
                lock = Lock(
                    project_id=project.id,
                    path=path,
                    path_key=key,
                    owner_id=actor.id,
                    branch=branch,
                    comment=comment,
                    acquired_at=now,
                    expires_at=now + timedelta(seconds=ttl) if ttl else None,
                    fencing_token=project.last_fencing_token,
                )
                session.add(lock)
                result[key] = lock
            await session.flush()
            for key in keys:
                if key not in existing:
                    changes.append(
                        self.record(session, project, EventKind.ACQUIRED, result[key], me, me, now)
                    )
            return changes, [HeldLock(result[key], me) for key in keys]

        return await self._write(slug, work, actor=actor)

    async def release(
        self, actor: User, slug: str, raw_paths: list[str], *, force: bool = False
    ) -> tuple[Project, list[HeldLock]]:
        """Release every path or none: each must be locked, and the actor's unless forced."""
        paths = _paths(raw_paths)

        async def work(session, project, now):
            keys, found = await _locks_by_key(session, project, paths)
            missing = [path for key, path in keys.items() if key not in found]
            if missing:
                raise NotFound(f"not locked: {', '.join(missing)}", paths=missing)
            return await self._release_held(
                session, project, [found[key] for key in keys], actor, force, now
            )

        return await self._write(slug, work, actor=actor, writable=False)

    async def release_by_id(
        self, actor: User, slug: str, lock_id: int, *, force: bool = False
    ) -> tuple[Project, HeldLock]:
        """Release the lock with this id (Git LFS unlocks by id): the one that was listed,
        never a later lock on the same path."""

        async def work(session, project, now):
            lock = await store.get_lock(session, project.id, lock_id)
            if lock is None or is_expired(lock, now):
                raise NotFound(f"no lock with id {lock_id}", field="id")
            changes, [held] = await self._release_held(session, project, [lock], actor, force, now)
            return changes, held

        return await self._write(slug, work, actor=actor, writable=False)

    async def _release_held(
        self,
        session: AsyncSession,
        project: Project,
        locks: list[Lock],
        actor: User,
        force: bool,
        now: datetime,
    ) -> tuple[list[LockChange], list[HeldLock]]:
        """Release these locks: the actor's own, or others' when forced and allowed."""
        others = [lock for lock in locks if lock.owner_id != actor.id]
        if others and not force:
            raise Forbidden(
                "locked by someone else: "
                + ", ".join(lock.path for lock in others)
                + " (an admin may release them with force)",
                paths=[lock.path for lock in others],
            )
        if others and not self._may_force(actor, project):
            raise Forbidden("only an admin may force-release another's lock")
        me = UserRef.of(actor)
        changes = []
        for lock in locks:
            kind = EventKind.RELEASED if lock.owner_id == actor.id else EventKind.FORCE_RELEASED
            changes += await self._release(session, project, [lock], kind, me, now)
        released = [
            HeldLock(lock, change.owner) for lock, change in zip(locks, changes, strict=True)
        ]
        return changes, released

    async def release_branch(
        self, actor: User, slug: str, branch: str
    ) -> tuple[Project, list[HeldLock]]:
        """Release all of the actor's own locks on a branch (after it was merged)."""
        branch = _text(branch, MAX_BRANCH_LENGTH, "branch")
        me = UserRef.of(actor)

        async def work(session, project, now):
            mine, _ = await store.find_locks(
                session, project.id, now=now, owner_id=actor.id, branch=branch
            )
            changes = await self._release(session, project, mine, EventKind.RELEASED, me, now)
            return changes, [HeldLock(lock, me) for lock in mine]

        return await self._write(slug, work, actor=actor, writable=False)

    def _may_force(self, actor: User, project: Project) -> bool:
        return (
            actor.role == Role.ADMIN
            or self.force_release_by_anyone
            or project.force_release_policy == ForceReleasePolicy.EVERYONE
        )

    async def renew(
        self, actor: User, slug: str, raw_path: str, ttl_seconds: int | None = None
    ) -> tuple[Project, HeldLock]:
        path = normalize_path(raw_path)
        validate_ttl(ttl_seconds)
        me = UserRef.of(actor)

        async def work(session, project, now):
            lock = await self._live_lock(session, project, path, now)
            if lock.owner_id != actor.id:
                raise Forbidden("only the holder may renew a lock")
            ttl = ttl_seconds or project.default_ttl_seconds
            if not ttl:
                raise BadUserInput(
                    "give ttlSeconds: this lock has no time limit to extend", field="ttlSeconds"
                )
            lock.expires_at = now + timedelta(seconds=ttl)
            lock.warned_at = None
            await session.flush()
            change = self.record(session, project, EventKind.RENEWED, lock, me, me, now)
            return [change], HeldLock(lock, me)

        return await self._write(slug, work, actor=actor)

    async def request_release(
        self, actor: User, slug: str, raw_path: str, message: str | None = None
    ) -> tuple[Project, LockChange]:
        path = normalize_path(raw_path)
        message = _text(message, MAX_MESSAGE_LENGTH, "message")
        me = UserRef.of(actor)

        async def work(session, project, now):
            lock = await self._live_lock(session, project, path, now)
            if lock.owner_id == actor.id:
                raise BadUserInput("you hold this lock yourself", field="path")
            owners = await user_refs(session, {lock.owner_id})
            owner = owners.get(lock.owner_id) or missing_user(lock.owner_id)
            change = self.record(
                session, project, EventKind.RELEASE_REQUESTED, lock, owner, me, now, message
            )
            return [change], change

        return await self._write(slug, work, actor=actor, writable=False)

    async def _live_lock(
        self, session: AsyncSession, project: Project, path: str, now: datetime
    ) -> Lock:
        [lock] = await store.locks_on_keys(
            session, project.id, [path_key(path, project.case_sensitive)]
        ) or [None]
        if lock is None or is_expired(lock, now):
            raise NotFound(f"not locked: {path}", paths=[path])
        return lock

    async def release_all_of_user(
        self, session: AsyncSession, user: User, actor: User, reason: str
    ) -> list[tuple[int, LockChange]]:
        """Inside the caller's transaction: force-release every lock `user` holds.

        The caller holds `user`'s row exclusively, so no new lock of theirs can appear; each
        project's locks are read under that project's row lock. Returns (project id, change)
        pairs for `publish_after_commit`.
        """
        changes = []
        now = utcnow()
        kind = EventKind.RELEASED if user.id == actor.id else EventKind.FORCE_RELEASED
        for project_id in await store.projects_of_owner(session, user.id):
            project = await project_store.get_project(session, project_id, for_update=True)
            held = await store.locks_of_owner(session, project_id, user.id)
            released = await self._release(
                session, project, held, kind, UserRef.of(actor), now, reason
            )
            changes += [(project_id, change) for change in released]
        return changes

    async def publish_after_commit(self, changes: list[tuple[int, LockChange]]) -> None:
        for project_id in sorted({project_id for project_id, _ in changes}):
            await self.feeds.publish(
                project_id, [change for pid, change in changes if pid == project_id]
            )

    async def expire_due(
        self,
        *,
        auto_release_after: timedelta | None = None,
        retention: timedelta | None = None,
        warn_before: timedelta | None = None,
    ) -> int:
        """Release locks past their TTL (and, by policy, those held too long) as EXPIRED, warn
        holders whose locks expire within `warn_before`, and drop events older than the
        retention. Runs once per cluster at a time."""
        now = utcnow()
        published: list[tuple[int, LockChange]] = []
        async with self.db.transaction() as session:
            if not await try_cluster_lock(session, "lock-expiry"):
                return 0
            acquired_before = None if auto_release_after is None else now - auto_release_after

            def why(lock: Lock) -> str:
                if is_expired(lock, now):
                    return "the lock's time ran out"
                return "released by the auto-release policy"

            for project_id in await store.projects_with_due_locks(session, now, acquired_before):
                project = await project_store.get_project(session, project_id, for_update=True)
                due = await store.due_locks(session, project_id, now, acquired_before)
                released = await self._release(
                    session, project, due, EventKind.EXPIRED, None, now, why
                )
                published += [(project_id, change) for change in released]
                if self.notifier is not None:
                    await self.notifier.lock_changes(session, project, released)
            if warn_before is not None and self.notifier is not None:
                await self._warn_expiring(session, now, warn_before)
            if retention is not None:
                purged = await store.purge_events_before(session, now - retention)
                for project_id, seq in purged.items():
                    project = await project_store.get_project(session, project_id)
                    project.purged_through_seq = max(project.purged_through_seq, seq)
            await session.flush()
        await self.publish_after_commit(published)
        return len(published)

    async def _warn_expiring(self, session: AsyncSession, now: datetime, before: timedelta):
        locks = await store.locks_to_warn(session, now, now + before)
        holders = {
            user.id: user for user in await get_users(session, {lock.owner_id for lock in locks})
        }
        for lock in locks:
            lock.warned_at = now
            holder = holders.get(lock.owner_id)
            if holder is None or not holder.active:
                continue
            project = await project_store.get_project(session, lock.project_id)
            minutes = max(1, round((lock.expires_at - now).total_seconds() / 60))
            mail = expiry_warning(lock.path, project.slug, minutes, self.notifier.public_url)
            await self.notifier.queue(session, "lock-expiry-warning", holder.email, mail)

    # -- reading ---------------------------------------------------------------------------

    async def _held(self, session: AsyncSession, locks: list[Lock]) -> list[HeldLock]:
        owners = await user_refs(session, {lock.owner_id for lock in locks})
        return [
            HeldLock(lock, owners.get(lock.owner_id) or missing_user(lock.owner_id))
            for lock in locks
        ]

    async def get(self, slug: str, lock_id: int) -> tuple[Project, HeldLock | None]:
        """The live lock with this id in the project, or None."""
        now = utcnow()
        async with self.db.read() as session:
            project = await find_project(session, slug)
            lock = await store.get_lock(session, project.id, lock_id)
            if lock is None or is_expired(lock, now):
                return project, None
            [held] = await self._held(session, [lock])
        return project, held

    async def status(
        self, slug: str, raw_paths: list[str]
    ) -> tuple[Project, list[HeldLock | None]]:
        """The lock on each path, in order (None where free)."""
        paths = _paths(raw_paths)
        now = utcnow()
        async with self.db.read() as session:
            project = await find_project(session, slug)
            keys = [path_key(path, project.case_sensitive) for path in paths]
            locks = [
                lock
                for lock in await store.locks_on_keys(session, project.id, keys)
                if not is_expired(lock, now)
            ]
            held = {entry.lock.path_key: entry for entry in await self._held(session, locks)}
        return project, [held.get(key) for key in keys]

    async def list(
        self,
        slug: str,
        *,
        path_prefix: str | None = None,
        owner: str | None = None,
        branch: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> tuple[Project, Page[HeldLock]]:
        limit = page_size(first)
        after_id = decode_cursor("lock", after)
        now = utcnow()
        async with self.db.read() as session:
            project = await find_project(session, slug)
            owner_id = None
            if owner is not None:
                user = await get_user_by_username(session, owner)
                if user is None:
                    return project, Page(items=[], cursors=[], total=0, has_next=False)
                owner_id = user.id
            prefix = normalize_prefix(path_prefix) if path_prefix else None
            locks, total = await store.find_locks(
                session,
                project.id,
                now=now,
                key_prefix=path_key(prefix, project.case_sensitive) if prefix else None,
                owner_id=owner_id,
                branch=branch,
                after_id=after_id,
                limit=limit + 1,
            )
            held = await self._held(session, locks[:limit])
        return project, Page(
            items=held,
            cursors=[encode_cursor("lock", entry.lock.id) for entry in held],
            total=total,
            has_next=len(locks) > limit,
        )

    async def history(
        self, slug: str, since: int | None, first: int | None
    ) -> tuple[Project, list[LockChange]]:
        if first is not None and not 0 <= first <= MAX_HISTORY_PAGE:
            raise BadUserInput(f"first must be between 0 and {MAX_HISTORY_PAGE}", field="first")
        async with self.db.read() as session:
            project = await find_project(session, slug)
            check_since(since, project.purged_through_seq)
            changes = await self.feeds.stored_changes(
                session,
                project.id,
                since or 0,
                limit=DEFAULT_HISTORY_PAGE if first is None else first,
            )
        if since is not None and changes and changes[0].seq != since + 1:
            check_since(since, changes[0].seq - 1)  # purged after the check above
        return project, changes

    async def follow(
        self,
        slug: str,
        *,
        path_prefix: str | None = None,
        since: int | None = None,
        until: datetime | None = None,
        recheck: Callable[[], Awaitable[None]] | None = None,
        on_overflow: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[Project, AsyncIterator[LockChange]]:
        """The project and its live changes (after `since`, stored ones first)."""
        prefix = normalize_prefix(path_prefix) if path_prefix else None
        async with self.db.read() as session:
            project = await find_project(session, slug)
        check_since(since, project.purged_through_seq)
        accept = None
        if prefix:
            key = path_key(prefix, project.case_sensitive)

            def accept(change: LockChange) -> bool:
                return path_key(change.event.path, project.case_sensitive).startswith(key)

        changes = self.feeds.follow(
            project.id,
            since,
            newest_seq=project.last_seq,
            accept=accept,
            until=until,
            recheck=recheck,
            on_overflow=on_overflow,
        )
        return project, changes


def check_since(since: int | None, purged_through_seq: int) -> None:
    """`since` must be a seq whose successors are all still stored."""
    if since is None:
        return
    if since < 0:
        raise BadUserInput("since must not be negative", field="since")
    if since < purged_through_seq:
        raise BadUserInput(
            f"events up to seq {purged_through_seq} are no longer kept: "
            "refetch the current locks and follow from their newest seq",
            field="since",
            reason="refetch",
            oldestSeq=purged_through_seq + 1,
        )
