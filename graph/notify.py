"""Watch lists in the GraphQL schema: mail when locks change under a path."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from db import notify as models
from db import projects as project_models
from graph.context import Context
from graph.projects import Project


@strawberry.type(description="Mail comes when a lock under pathPrefix is taken or released.")
class Watch:
    id: strawberry.ID
    project: Project
    path_prefix: str
    created_at: datetime

    @classmethod
    def of(cls, watch: models.Watch, project: project_models.Project) -> Watch:
        return cls(
            id=strawberry.ID(str(watch.id)),
            project=Project.of(project),
            path_prefix=watch.path_prefix,
            created_at=watch.created_at,
        )


@strawberry.type
class WatchQuery:
    @strawberry.field(description="The signed-in user's watch list.")
    async def my_watches(self, info: Info[Context, None]) -> list[Watch]:
        actor = await info.context.require_viewer()
        watches = await info.context.services.notifier.watches(actor)
        return [Watch.of(watch, project) for watch, project in watches]


@strawberry.type
class WatchMutation:
    @strawberry.mutation(description="Watch a path prefix ('' for the whole project).")
    async def watch(self, info: Info[Context, None], project: str, path_prefix: str) -> Watch:
        actor = await info.context.require_viewer()
        notifier = info.context.services.notifier
        watch = await notifier.watch(actor, project, path_prefix)
        return next(Watch.of(w, p) for w, p in await notifier.watches(actor) if w.id == watch.id)

    @strawberry.mutation(description="Stop watching; false when there was no such watch.")
    async def unwatch(self, info: Info[Context, None], project: str, path_prefix: str) -> bool:
        actor = await info.context.require_viewer()
        return await info.context.services.notifier.unwatch(actor, project, path_prefix)
