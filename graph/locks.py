"""Locks, their events and the live subscription in the GraphQL schema."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from strawberry.types import Info

from domain.errors import BadUserInput
from domain.locks import EventKind, HeldLock, Locks
from domain.pagination import Page
from domain.projects import ProjectState
from domain.streams import Change
from graph.context import Context
from graph.identity import User
from graph.pagination import PageInfo
from graph.projects import Project
from graph.read_cache import versioned
from graph.scalars import Long
from graph.shared_events import shared_payload


@strawberry.type
class Lock:
    id: strawberry.ID
    project: Project
    path: str
    owner: User
    branch: str | None
    comment: str | None
    acquired_at: datetime
    expires_at: datetime | None
    fencing_token: Long

    @classmethod
    def of(cls, held: HeldLock, project: Project) -> Lock:
        lock = held.lock
        return cls(
            id=strawberry.ID(str(lock.id)),
            project=project,
            path=lock.path,
            owner=User.of_ref(held.owner),
            branch=lock.branch,
            comment=lock.comment,
            acquired_at=lock.acquired_at,
            expires_at=lock.expires_at,
            fencing_token=lock.fencing_token,
        )


LockEventKind = strawberry.enum(EventKind, name="LockEventKind")


@strawberry.type
class LockEvent:
    seq: Long
    kind: LockEventKind
    lock: Lock
    actor: User | None
    message: str | None
    at: datetime

    @classmethod
    def of(cls, change: Change, project: Project) -> LockEvent:
        """The event, with the project as of this event (its lastSeq is the event's seq)."""
        event = change.event
        lock = Lock(
            id=strawberry.ID(str(event.lock_id)),
            project=dataclasses.replace(project, last_seq=event.seq),
            path=event.path,
            owner=User.of_ref(change.holder),
            branch=event.branch,
            comment=event.comment,
            acquired_at=event.acquired_at,
            expires_at=event.expires_at,
            fencing_token=event.fencing_token,
        )
        return cls(
            seq=event.seq,
            kind=LockEventKind(event.kind),
            lock=lock,
            actor=User.of_ref(change.actor) if change.actor else None,
            message=event.message,
            at=event.at,
        )


@strawberry.type
class LockEdge:
    node: Lock
    cursor: str


@strawberry.type
class LockConnection:
    edges: list[LockEdge]
    page_info: PageInfo
    total_count: int
    seq: Long = strawberry.field(
        description="The project's newest event seq when this list was read: subscribe to "
        "lockEvents with since: seq to miss no change after it."
    )

    @classmethod
    def of(cls, page: Page[HeldLock], state: ProjectState) -> LockConnection:
        graph_project = Project.of(state)
        return cls(
            edges=[
                LockEdge(node=Lock.of(held, graph_project), cursor=cursor)
                for held, cursor in zip(page.items, page.cursors, strict=True)
            ],
            page_info=PageInfo.of(page),
            total_count=page.total,
            seq=state.last_seq,
        )


def _locks(info: Info[Context, None]) -> Locks:
    return info.context.services.locks


@versioned("locks")
@versioned("lockStatus")
@versioned("lock")
async def _project_locks(context: Context, arguments: dict):
    return await context.services.locks.version(arguments["project"])


@strawberry.type
class LockQuery:
    @strawberry.field(description="The lock on one path, or null when it is free.")
    async def lock(self, info: Info[Context, None], project: str, path: str) -> Lock | None:
        await info.context.require_viewer()
        found, [held] = await _locks(info).status(project, [path])
        return None if held is None else Lock.of(held, Project.of(found))

    @strawberry.field(description="Held locks in the order they were taken.")
    async def locks(
        self,
        info: Info[Context, None],
        project: str,
        path_prefix: str | None = None,
        owner: str | None = None,
        first: int | None = None,
        after: str | None = None,
        branch: str | None = None,
    ) -> LockConnection:
        await info.context.require_viewer()
        found, page = await _locks(info).list(
            project, path_prefix=path_prefix, owner=owner, branch=branch, first=first, after=after
        )
        return LockConnection.of(page, found)

    @strawberry.field(
        description="One entry per requested path, in the same order: the lock on it, or null."
    )
    async def lock_status(
        self, info: Info[Context, None], project: str, paths: list[str]
    ) -> list[Lock | None]:
        await info.context.require_viewer()
        found, held = await _locks(info).status(project, paths)
        graph_project = Project.of(found)
        return [None if entry is None else Lock.of(entry, graph_project) for entry in held]

    @strawberry.field(description="Stored events with seq > since, oldest first.")
    async def lock_history(
        self,
        info: Info[Context, None],
        project: str,
        since: Long | None = None,
        first: int | None = None,
    ) -> list[LockEvent]:
        await info.context.require_viewer()
        found, changes = await _locks(info).history(project, since, first)
        graph_project = Project.of(found)
        return [LockEvent.of(change, graph_project) for change in changes]


@strawberry.type
class LockMutation:
    @strawberry.mutation(description="Idempotent for the holder; CONFLICT names the holder.")
    async def acquire_lock(
        self,
        info: Info[Context, None],
        project: str,
        path: str,
        comment: str | None = None,
        branch: str | None = None,
        ttl_seconds: int | None = None,
    ) -> Lock:
        actor = await info.context.require_viewer()
        found, [held] = await _locks(info).acquire(
            actor, project, [path], comment=comment, branch=branch, ttl_seconds=ttl_seconds
        )
        return Lock.of(held, Project.of(found))

    @strawberry.mutation(
        description="All or nothing: on any conflict no lock is taken and the error names "
        "every holder."
    )
    async def acquire_locks(
        self,
        info: Info[Context, None],
        project: str,
        paths: list[str],
        comment: str | None = None,
        branch: str | None = None,
        ttl_seconds: int | None = None,
    ) -> list[Lock]:
        actor = await info.context.require_viewer()
        found, held = await _locks(info).acquire(
            actor, project, paths, comment=comment, branch=branch, ttl_seconds=ttl_seconds
        )
        graph_project = Project.of(found)
        return [Lock.of(entry, graph_project) for entry in held]

    @strawberry.mutation(description="Only the holder releases; force lets an admin do it.")
    async def release_lock(
        self, info: Info[Context, None], project: str, path: str, force: bool | None = False
    ) -> Lock:
        actor = await info.context.require_viewer()
        found, [held] = await _locks(info).release(actor, project, [path], force=bool(force))
        return Lock.of(held, Project.of(found))

    @strawberry.mutation(
        description="All or nothing. With branch (and no paths), releases all of your own "
        "locks on that branch, e.g. after it was merged."
    )
    async def release_locks(
        self,
        info: Info[Context, None],
        project: str,
        paths: list[str],
        force: bool | None = False,
        branch: str | None = None,
    ) -> list[Lock]:
        actor = await info.context.require_viewer()
        if branch is not None:
            if paths or force:
                raise BadUserInput("with branch, give no paths and no force", field="branch")
            found, held = await _locks(info).release_branch(actor, project, branch)
        else:
            found, held = await _locks(info).release(actor, project, paths, force=bool(force))
        graph_project = Project.of(found)
        return [Lock.of(entry, graph_project) for entry in held]

    @strawberry.mutation(description="Extends the holder's lock by ttlSeconds from now.")
    async def renew_lock(
        self,
        info: Info[Context, None],
        project: str,
        path: str,
        ttl_seconds: int | None = None,
    ) -> Lock:
        actor = await info.context.require_viewer()
        found, held = await _locks(info).renew(actor, project, path, ttl_seconds)
        return Lock.of(held, Project.of(found))

    @strawberry.mutation(
        description="Asks the holder to release: they see a RELEASE_REQUESTED event (and an "
        "email when mail is on)."
    )
    async def request_lock_release(
        self, info: Info[Context, None], project: str, path: str, message: str | None = None
    ) -> LockEvent:
        actor = await info.context.require_viewer()
        found, change = await _locks(info).request_release(actor, project, path, message)
        return LockEvent.of(change, Project.of(found))


@strawberry.type
class LockSubscription:
    @strawberry.subscription(
        description="Live lock changes. With since, first every stored event with seq > since, "
        "then live ones."
    )
    async def lock_events(
        self,
        info: Info[Context, None],
        project: str,
        path_prefix: str | None = None,
        since: Long | None = None,
    ) -> AsyncGenerator[LockEvent, None]:
        await info.context.require_viewer()
        found, changes = await _locks(info).follow(
            project,
            path_prefix=path_prefix,
            since=since,
            **info.context.live_options(),
        )
        graph_project = Project.of(ProjectState(found, 0))
        try:
            async for change in changes:
                yield shared_payload(change, lambda change: LockEvent.of(change, graph_project))
        finally:
            await changes.aclose()
