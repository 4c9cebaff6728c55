"""Locks: who holds which path of a project, on the project's stream (domain/holds.py).

Acquire, release, renew and "please release" are hot writes: one statement each, run first.
When one returns nothing (the path was taken, someone else's, expired, the project archived,
the actor deactivated), the operation runs again on the general path, under the stream's row
lock, which either does it — expiring what ran out first — or says exactly why not.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import SimpleNamespace

from sqlalchemy.ext.asyncio import AsyncSession

from db import locks as store
from db import notify as notify_store
from db import projects as project_store
from db.base import utcnow
from db.engine import Database, try_cluster_lock
from db.identity import User, get_user_by_username, get_users
from db.locks import LOCKS, Lock
from db.projects import Project
from db.streams import HoldTaken, purge_events_before
from domain.access import is_admin
from domain.errors import BadUserInput, Conflict, Forbidden, NotFound
from domain.feeds import Feeds
from domain.holds import Holds, Writer
from domain.mails import expiry_warning, lock_alert, watch_alert
from domain.notify import Notifier
from domain.pagination import Page, decode_cursor, encode_cursor, page_size
from domain.paths import normalize_path, normalize_prefix, path_key
from domain.people import UserRef, missing_user, user_refs
from domain.projects import (
    ForceReleasePolicy,
    Projects,
    ProjectState,
    find_project,
    project_state,
    validate_ttl,
)
from domain.streams import Change, EventSource, check_since

logger = logging.getLogger("holdfast.locks")

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


def _owner(row) -> UserRef:
    """The owner of a listed lock, from the columns the list query joins in."""
    return UserRef(row.owner_id, row.owner_username, row.owner_role, row.owner_active)


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


async def _locks_by_key(
    session: AsyncSession, project: Project, paths: list[str]
) -> tuple[dict[str, str], dict[str, Lock]]:
    """The paths by key, and the locks held on those keys (expired ones included)."""
    keys = by_key(paths, project.case_sensitive)
    locks = await store.locks_on_keys(session, project.id, list(keys))
    return keys, {lock.path_key: lock for lock in locks}


class Locks:
    def __init__(
        self,
        db: Database,
        holds: Holds,
        projects: Projects,
        notifier: Notifier | None = None,
    ) -> None:
        self.db = db
        self.holds = holds
        self.projects = projects
        self.notifier = notifier
        self.force_release_by_anyone = False
        """Cluster-wide runtime setting; a project may also allow it on its own."""
        if notifier is not None:
            LOCK_EVENTS.mail = self._mail
            notifier.mail_on(LOCK_EVENTS)

    @property
    def feeds(self) -> Feeds:
        return self.holds.feeds

    # -- writing ---------------------------------------------------------------------------

    def _after(self, project: Project, changes: list[Change]) -> ProjectState:
        last = max((change.seq for change in changes), default=0)
        return ProjectState(project, last)

    async def acquire(
        self,
        actor: User,
        slug: str,
        raw_paths: list[str],
        *,
        comment: str | None = None,
        branch: str | None = None,
        ttl_seconds: int | None = None,
    ) -> tuple[ProjectState, list[HeldLock]]:
        """Take every path or none; paths the actor holds already are returned as they are."""
        paths = _paths(raw_paths)
        comment = _text(comment, MAX_COMMENT_LENGTH, "comment")
        branch = _text(branch, MAX_BRANCH_LENGTH, "branch")
        validate_ttl(ttl_seconds)
        project = await self.projects.cached(slug)
        keys = by_key(paths, project.case_sensitive)
        if project.archived_at is None:
            now = utcnow()
            ttl = ttl_seconds or project.default_ttl_seconds
            rows = [
                {
                    "project_id": project.id,
                    "path": path,
                    "path_key": key,
                    "owner_id": actor.id,
                    "branch": branch,
                    "comment": comment,
                    "acquired_at": now,
                    "expires_at": now + timedelta(seconds=ttl) if ttl else None,
                }
                for key, path in keys.items()
            ]
            try:
                events = await store.take(self.db, project.stream_id, project.id, actor, rows, now)
            except HoldTaken:
                events = None
            if events:
                changes = await self.holds.committed(LOCK_EVENTS, project.stream_id, events, actor)
                held = {
                    path_key(c.event.path, project.case_sensitive): HeldLock(
                        lock_of(c.event), c.holder
                    )
                    for c in changes
                }
                return self._after(project, changes), [held[key] for key in keys]
        me = UserRef.of(actor)
        async with self.holds.transaction(LOCK_EVENTS, project.stream_id, actor=actor) as w:
            project = await find_project(w.session, slug)
            if project.archived_at is not None:
                raise Conflict(f"the project {project.slug!r} is archived", field="project")
            now = utcnow()
            keys, existing = await _locks_by_key(w.session, project, paths)
            expired = [lock for lock in existing.values() if is_expired(lock, now)]
            await self._release(w, expired, EventKind.EXPIRED, None, now)
            for lock in expired:
                del existing[lock.path_key]
            conflicts = [lock for lock in existing.values() if lock.owner_id != actor.id]
            if conflicts:
                owners = await user_refs(w.session, {lock.owner_id for lock in conflicts})
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
            result = dict(existing)
            for key, path in keys.items():
                if key in existing:
                    continue
                lock = Lock(
                    project_id=project.id,
                    path=path,
                    path_key=key,
                    owner_id=actor.id,
                    branch=branch,
                    comment=comment,
                    acquired_at=now,
                    expires_at=now + timedelta(seconds=ttl) if ttl else None,
                )
                await w.take(lock, EventKind.ACQUIRED, holder=me, actor=me, at=now)
                result[key] = lock
        state = ProjectState(project, w.stream.last_seq)
        return state, [HeldLock(result[key], me) for key in keys]

    async def _release(
        self,
        writer: Writer,
        locks: list[Lock],
        kind: EventKind | Callable[[Lock], EventKind],
        actor: UserRef | None,
        now: datetime,
        message: str | Callable[[Lock], str] | None = None,
    ) -> list[HeldLock]:
        """Record `kind` for each lock and delete it (on the general path)."""
        owners = await user_refs(writer.session, {lock.owner_id for lock in locks})
        released = []
        for lock in locks:
            owner = owners.get(lock.owner_id) or missing_user(lock.owner_id)
            writer.record(
                lock,
                kind(lock) if callable(kind) else kind,
                holder=owner,
                actor=actor,
                at=now,
                message=message(lock) if callable(message) else message,
            )
            await writer.session.delete(lock)
            released.append(HeldLock(lock, owner))
        await writer.session.flush()
        return released

    def _may_force(self, actor: User, project: Project) -> bool:
        return (
            is_admin(actor)
            or self.force_release_by_anyone
            or project.force_release_policy == ForceReleasePolicy.EVERYONE
        )

    def _released(self, project: Project, changes: list[Change], keys) -> list[HeldLock]:
        held = {
            path_key(c.event.path, project.case_sensitive): HeldLock(lock_of(c.event), c.holder)
            for c in changes
        }
        return [held[key] for key in keys]

    async def release(
        self, actor: User, slug: str, raw_paths: list[str], *, force: bool = False
    ) -> tuple[ProjectState, list[HeldLock]]:
        """Release every path or none: each must be locked, and the actor's unless forced."""
        paths = _paths(raw_paths)
        project = await self.projects.cached(slug)
        keys = by_key(paths, project.case_sensitive)
        events = await store.give_back(
            self.db,
            project.stream_id,
            project.id,
            actor,
            list(keys),
            force=force and self._may_force(actor, project),
            at=utcnow(),
        )
        if events:
            changes = await self.holds.committed(LOCK_EVENTS, project.stream_id, events, actor)
            return self._after(project, changes), self._released(project, changes, keys)
        async with self.holds.transaction(LOCK_EVENTS, project.stream_id, actor=actor) as w:
            project = await find_project(w.session, slug)
            keys, found = await _locks_by_key(w.session, project, paths)
            missing = [path for key, path in keys.items() if key not in found]
            if missing:
                raise NotFound(f"not locked: {', '.join(missing)}", paths=missing)
            released = await self._release_held(
                w, project, [found[key] for key in keys], actor, force
            )
        return ProjectState(project, w.stream.last_seq), released

    async def release_by_id(
        self, actor: User, slug: str, lock_id: int, *, force: bool = False
    ) -> tuple[ProjectState, HeldLock]:
        """Release the lock with this id (Git LFS unlocks by id): the one that was listed,
        never a later lock on the same path."""
        project = await self.projects.cached(slug)
        now = utcnow()
        events = await store.give_back_by_id(
            self.db,
            project.stream_id,
            project.id,
            actor,
            lock_id,
            force=force and self._may_force(actor, project),
            at=now,
        )
        if events:
            [change] = await self.holds.committed(LOCK_EVENTS, project.stream_id, events, actor)
            return self._after(project, [change]), HeldLock(lock_of(change.event), change.holder)
        async with self.holds.transaction(LOCK_EVENTS, project.stream_id, actor=actor) as w:
            project = await find_project(w.session, slug)
            lock = await store.get_lock(w.session, project.id, lock_id)
            if lock is None or is_expired(lock, utcnow()):
                raise NotFound(f"no lock with id {lock_id}", field="id")
            [held] = await self._release_held(w, project, [lock], actor, force)
        return ProjectState(project, w.stream.last_seq), held

    async def _release_held(
        self, writer: Writer, project: Project, locks: list[Lock], actor: User, force: bool
    ) -> list[HeldLock]:
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

        def kind(lock: Lock) -> EventKind:
            return EventKind.RELEASED if lock.owner_id == actor.id else EventKind.FORCE_RELEASED

        return await self._release(writer, locks, kind, UserRef.of(actor), utcnow())

    async def release_branch(
        self, actor: User, slug: str, branch: str
    ) -> tuple[ProjectState, list[HeldLock]]:
        """Release all of the actor's own locks on a branch (after it was merged)."""
        branch = _text(branch, MAX_BRANCH_LENGTH, "branch")
        project = await self.projects.cached(slug)
        async with self.holds.transaction(LOCK_EVENTS, project.stream_id, actor=actor) as w:
            now = utcnow()
            mine, _ = await store.find_locks(
                w.session, project.id, now=now, owner_id=actor.id, branch=branch
            )
            released = await self._release(w, mine, EventKind.RELEASED, UserRef.of(actor), now)
        return ProjectState(project, w.stream.last_seq), released

    async def renew(
        self, actor: User, slug: str, raw_path: str, ttl_seconds: int | None = None
    ) -> tuple[ProjectState, HeldLock]:
        path = normalize_path(raw_path)
        validate_ttl(ttl_seconds)
        project = await self.projects.cached(slug)
        ttl = ttl_seconds or project.default_ttl_seconds
        if ttl and project.archived_at is None:
            now = utcnow()
            events = await store.extend(
                self.db,
                project.stream_id,
                project.id,
                actor,
                path_key(path, project.case_sensitive),
                now + timedelta(seconds=ttl),
                now,
            )
            if events:
                [change] = await self.holds.committed(LOCK_EVENTS, project.stream_id, events, actor)
                return self._after(project, [change]), HeldLock(
                    lock_of(change.event), change.holder
                )
        me = UserRef.of(actor)
        async with self.holds.transaction(LOCK_EVENTS, project.stream_id, actor=actor) as w:
            project = await find_project(w.session, slug)
            if project.archived_at is not None:
                raise Conflict(f"the project {project.slug!r} is archived", field="project")
            now = utcnow()
            lock = await self._live_lock(w.session, project, path, now)
            if lock.owner_id != actor.id:
                raise Forbidden("only the holder may renew a lock")
            ttl = ttl_seconds or project.default_ttl_seconds
            if not ttl:
                raise BadUserInput(
                    "give ttlSeconds: this lock has no time limit to extend", field="ttlSeconds"
                )
            lock.expires_at = now + timedelta(seconds=ttl)
            lock.warned_at = None
            await w.session.flush()
            w.record(lock, EventKind.RENEWED, holder=me, actor=me, at=now)
        return ProjectState(project, w.stream.last_seq), HeldLock(lock, me)

    async def request_release(
        self, actor: User, slug: str, raw_path: str, message: str | None = None
    ) -> tuple[ProjectState, Change]:
        path = normalize_path(raw_path)
        message = _text(message, MAX_MESSAGE_LENGTH, "message")
        project = await self.projects.cached(slug)
        now = utcnow()
        events = await store.note(
            self.db,
            project.stream_id,
            project.id,
            actor,
            path_key(path, project.case_sensitive),
            message,
            now,
        )
        if events:
            [change] = await self.holds.committed(LOCK_EVENTS, project.stream_id, events, actor)
            return self._after(project, [change]), change
        async with self.holds.transaction(LOCK_EVENTS, project.stream_id, actor=actor) as w:
            project = await find_project(w.session, slug)
            lock = await self._live_lock(w.session, project, path, utcnow())
            if lock.owner_id == actor.id:
                raise BadUserInput("you hold this lock yourself", field="path")
            owners = await user_refs(w.session, {lock.owner_id})
            owner = owners.get(lock.owner_id) or missing_user(lock.owner_id)
            change = w.record(
                lock,
                EventKind.RELEASE_REQUESTED,
                holder=owner,
                actor=UserRef.of(actor),
                at=utcnow(),
                message=message,
            )
        return ProjectState(project, w.stream.last_seq), change

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
    ) -> Callable[[], Awaitable[None]]:
        """Inside the caller's transaction (which holds `user`'s row exclusively, so no new
        lock of theirs can appear): force-release every lock `user` holds. Returns what
        publishes the changes after commit."""
        writers = []
        now = utcnow()
        kind = EventKind.RELEASED if user.id == actor.id else EventKind.FORCE_RELEASED
        for project_id in await store.projects_of_owner(session, user.id):
            project = await project_store.get_project(session, project_id)
            writer = await self.holds.within(session, LOCK_EVENTS, project.stream_id)
            held = await store.locks_of_owner(session, project_id, user.id)
            await self._release(writer, held, kind, UserRef.of(actor), now, reason)
            writers.append(writer)

        async def publish() -> None:
            await self.holds.publish(*writers)

        return publish

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
        writers: list[Writer] = []
        async with self.db.transaction() as session:
            if not await try_cluster_lock(session, "lock-expiry"):
                return 0
            acquired_before = None if auto_release_after is None else now - auto_release_after

            def why(lock: Lock) -> str:
                if is_expired(lock, now):
                    return "the lock's time ran out"
                return "released by the auto-release policy"

            for project_id in await store.projects_with_due_locks(session, now, acquired_before):
                project = await project_store.get_project(session, project_id)
                writer = await self.holds.within(session, LOCK_EVENTS, project.stream_id)
                due = await store.due_locks(session, project_id, now, acquired_before)
                await self._release(writer, due, EventKind.EXPIRED, None, now, why)
                writers.append(writer)
            if warn_before is not None and self.notifier is not None:
                await self._warn_expiring(session, now, warn_before)
            if retention is not None:
                await purge_events_before(session, LOCK_EVENTS.model, now - retention)
                await notify_store.purge_ended_watches(session, now - retention)
        await self.holds.publish(*writers)
        return sum(len(writer.changes) for writer in writers)

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

    # -- mail: after commit, once per cluster ---------------------------------------------

    async def _mail(self, session: AsyncSession, stream_id: int, changes: list[Change]) -> None:
        """The mail these lock changes call for: to the holder when someone else (or time)
        acted on their lock, and to watchers (per the alert policy) of what was locked or
        released. Only active users get mail."""
        project = await project_store.get_project_by_stream(session, stream_id)
        if project is None:
            return
        public_url = self.notifier.public_url
        alerts = [
            (change, mail)
            for change in changes
            if (mail := lock_alert(change, project.slug, public_url)) is not None
        ]
        watched = await self._watchers(session, project, changes)
        ids = {change.holder.id for change, _ in alerts} | {
            user_id for users in watched.values() for user_id in users
        }
        users = {user.id: user for user in await get_users(session, ids) if user.active}
        for change, mail in alerts:
            if (holder := users.get(change.holder.id)) is not None:
                kind = f"lock-{change.event.kind.lower()}"
                await self.notifier.queue(session, kind, holder.email, mail)
        for change, watcher_ids in watched.items():
            mail = watch_alert(change, project.slug, public_url)
            for user_id in sorted(watcher_ids):
                if (watcher := users.get(user_id)) is not None:
                    await self.notifier.queue(session, "lock-watch", watcher.email, mail)

    async def _watchers(
        self, session: AsyncSession, project: Project, changes: list[Change]
    ) -> dict[Change, set[int]]:
        """Who to tell of each lock taken or released, besides the one who did it."""
        relevant = [change for change in changes if change.event.kind in WATCHED_KINDS]
        policy = self.notifier.config.alert_policy
        if policy == "none" or not relevant:
            return {}
        if policy == "everyone":
            everyone = {user.id for user in await notify_store.active_users(session)}
            candidates = {change: set(everyone) for change in relevant}
        else:
            since = min(change.event.at for change in relevant)
            watches = await notify_store.watches_of_project(session, project.id, since)
            candidates = {
                change: {
                    watch.user_id
                    for watch in watches
                    if watch.active_at(change.event.at)
                    and path_key(change.event.path, project.case_sensitive).startswith(
                        path_key(watch.path_prefix, project.case_sensitive)
                    )
                }
                for change in relevant
            }
        for change, users in candidates.items():
            users.discard(change.actor.id if change.actor else None)
        return {change: users for change, users in candidates.items() if users}

    # -- reading ---------------------------------------------------------------------------

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

    async def _held(self, session: AsyncSession, locks: list[Lock]) -> list[HeldLock]:
        owners = await user_refs(session, {lock.owner_id for lock in locks})
        return [
            HeldLock(lock, owners.get(lock.owner_id) or missing_user(lock.owner_id))
            for lock in locks
        ]

    async def get(self, slug: str, lock_id: int) -> tuple[ProjectState, HeldLock | None]:
        """The live lock with this id in the project, or None."""
        now = utcnow()
        async with self.db.read() as session:
            state = await project_state(session, slug)
            lock = await store.get_lock(session, state.project.id, lock_id)
            if lock is None or is_expired(lock, now):
                return state, None
            [held] = await self._held(session, [lock])
        return state, held

    async def status(
        self, slug: str, raw_paths: list[str]
    ) -> tuple[ProjectState, list[HeldLock | None]]:
        """The lock on each path, in order (None where free)."""
        paths = _paths(raw_paths)
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
            held = {entry.lock.path_key: entry for entry in await self._held(session, locks)}
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
        held = [
            HeldLock(
                row, UserRef(row.owner_id, row.owner_username, row.owner_role, row.owner_active)
            )
            for row in rows[:limit]
        ]
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
