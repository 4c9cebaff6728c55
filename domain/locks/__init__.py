"""Locks: who holds which path of a project, on the project's stream (domain/holds.py).

Acquire, release, renew and "please release" are hot writes: one statement each, run first.
When one returns nothing (the path was taken, someone else's, expired, the project archived,
the actor deactivated), the operation runs again on the general path, under the stream's row
lock, which either does it — expiring what ran out first — or says exactly why not.

Taking and releasing one's own locks is in the lock events only. Force-releasing another's
lock is an act the audit log records (domain.audit), in the same transaction: so it is never a
hot write, but always the general path.

Writing is here; reading in reads.py, the mail rules in mail.py, what they share in records.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from db import locks as store
from db import notify as notify_store
from db import projects as project_store
from db.base import utcnow
from db.engine import Database, try_cluster_lock
from db.identity import User
from db.locks import Lock
from db.projects import Project
from db.streams import HoldTaken, purge_events_before
from domain import audit
from domain.access import is_admin
from domain.errors import BadUserInput, Conflict, Forbidden, NotFound
from domain.feeds import Feeds
from domain.holds import Holds, Writer
from domain.locks.mail import LockMail
from domain.locks.reads import LockReads
from domain.locks.records import (
    LOCK_EVENTS,
    MAX_BRANCH_LENGTH,
    MAX_COMMENT_LENGTH,
    MAX_MESSAGE_LENGTH,
    EventKind,
    HeldLock,
    by_key,
    checked_paths,
    checked_text,
    is_expired,
    lock_of,
    locks_by_key,
)
from domain.notify import Notifier
from domain.paths import normalize_path, path_key
from domain.people import UserRef, missing_user, user_refs
from domain.projects import ForceReleasePolicy, Projects, ProjectState, find_project, validate_ttl
from domain.streams import Change

__all__ = ["LOCK_EVENTS", "EventKind", "HeldLock", "Locks", "is_expired"]


class Locks(LockReads):
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
        self.force_release_by_anyone = False
        """Cluster-wide runtime setting; a project may also allow it on its own."""
        holds.serve(LOCK_EVENTS)
        self.mail = LockMail(notifier) if notifier is not None else None
        if notifier is not None:
            LOCK_EVENTS.mail = self.mail
            notifier.mail_on(LOCK_EVENTS)

    @property
    def feeds(self) -> Feeds:
        return self.holds.feeds

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
        paths = checked_paths(raw_paths)
        comment = checked_text(comment, MAX_COMMENT_LENGTH, "comment")
        branch = checked_text(branch, MAX_BRANCH_LENGTH, "branch")
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
            keys, existing = await locks_by_key(w.session, project, paths)
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
        """Record `kind` for each lock and delete it (on the general path); a force-release
        goes to the audit log too."""
        owners = await user_refs(writer.session, {lock.owner_id for lock in locks})
        released = []
        for lock in locks:
            owner = owners.get(lock.owner_id) or missing_user(lock.owner_id)
            lock_kind = kind(lock) if callable(kind) else kind
            writer.record(
                lock,
                lock_kind,
                holder=owner,
                actor=actor,
                at=now,
                message=message(lock) if callable(message) else message,
            )
            if lock_kind == EventKind.FORCE_RELEASED:
                audit.record(
                    writer.session,
                    actor=actor,
                    action="force_release",
                    resource_type="lock",
                    resource_id=lock.id,
                    before={
                        **audit.columns(
                            lock, "project_id", "path", "owner_id", "branch", "comment"
                        ),
                        "owner": owner.username,
                        **audit.columns(lock, "acquired_at", "expires_at"),
                    },
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
        paths = checked_paths(raw_paths)
        project = await self.projects.cached(slug)
        keys = by_key(paths, project.case_sensitive)
        events = await store.give_back(
            self.db, project.stream_id, project.id, actor, list(keys), at=utcnow()
        )
        if events:
            changes = await self.holds.committed(LOCK_EVENTS, project.stream_id, events, actor)
            return self._after(project, changes), self._released(project, changes, keys)
        async with self.holds.transaction(LOCK_EVENTS, project.stream_id, actor=actor) as w:
            project = await find_project(w.session, slug)
            keys, found = await locks_by_key(w.session, project, paths)
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
            self.db, project.stream_id, project.id, actor, lock_id, at=now
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
        branch = checked_text(branch, MAX_BRANCH_LENGTH, "branch")
        project = await self.projects.cached(slug)
        async with self.holds.transaction(LOCK_EVENTS, project.stream_id, actor=actor) as w:
            now = utcnow()
            mine = await store.live_locks_on_branch(w.session, project.id, actor.id, branch, now)
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
        message = checked_text(message, MAX_MESSAGE_LENGTH, "message")
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
            if warn_before is not None and self.mail is not None:
                await self.mail.warn_expiring(session, now, warn_before)
            if retention is not None:
                await purge_events_before(session, LOCK_EVENTS.model, now - retention)
                await notify_store.purge_ended_watches(session, now - retention)
        await self.holds.publish(*writers)
        return sum(len(writer.changes) for writer in writers)
