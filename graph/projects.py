"""Projects in the GraphQL schema."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from domain import projects
from graph.context import Context
from graph.scalars import Long

ForceReleasePolicy = strawberry.enum(
    projects.ForceReleasePolicy,
    name="ForceReleasePolicy",
    description="Who may force-release another's lock in a project.",
)


@strawberry.type
class Project:
    id: strawberry.ID
    slug: str
    name: str
    case_sensitive: bool
    archived: bool
    default_ttl_seconds: int | None
    force_release_policy: ForceReleasePolicy
    last_seq: Long = strawberry.field(
        description="The seq of the project's newest lock event (when this was read)."
    )
    lfs_upstream_url: str | None = strawberry.field(
        description="The Git LFS server that object transfers sent to /lfs/{slug} go to."
    )
    has_lfs_upstream_authorization: bool = strawberry.field(
        description="Whether an Authorization for the LFS upstream is set (it is never shown)."
    )

    @classmethod
    def of(cls, state: projects.ProjectState) -> Project:
        project = state.project
        return cls(
            id=strawberry.ID(str(project.id)),
            slug=project.slug,
            name=project.name,
            case_sensitive=project.case_sensitive,
            archived=project.archived_at is not None,
            default_ttl_seconds=project.default_ttl_seconds,
            force_release_policy=ForceReleasePolicy(project.force_release_policy),
            last_seq=state.last_seq,
            lfs_upstream_url=project.lfs_upstream_url,
            has_lfs_upstream_authorization=bool(project.lfs_upstream_authorization),
        )


@strawberry.input
class CreateProjectInput:
    slug: str
    name: str
    case_sensitive: bool | None = False
    default_ttl_seconds: int | None = None
    force_release_policy: ForceReleasePolicy | None = ForceReleasePolicy.ADMINS


@strawberry.input(
    description="Only the fields given change; null clears defaultTtlSeconds and the LFS upstream."
)
class UpdateProjectInput:
    name: str | None = strawberry.UNSET
    default_ttl_seconds: int | None = strawberry.UNSET
    force_release_policy: ForceReleasePolicy | None = strawberry.UNSET
    archived: bool | None = strawberry.UNSET
    lfs_upstream_url: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="Where /lfs/{slug}/objects/batch is forwarded, e.g. "
        "https://lfs.example.com/org/repo.git/info/lfs",
    )
    lfs_upstream_authorization: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="The Authorization header value sent upstream; write-only.",
    )


def _given(value):
    return None if value is strawberry.UNSET else value


def _cleared(value):
    """UNSET leaves a field alone (None); null clears it ("")."""
    if value is strawberry.UNSET:
        return None
    return "" if value is None else value


@strawberry.type
class ProjectQuery:
    @strawberry.field
    async def project(self, info: Info[Context, None], slug: str) -> Project | None:
        await info.context.require_viewer()
        found = await info.context.services.projects.find(slug)
        return None if found is None else Project.of(found)

    @strawberry.field(description="Projects in slug order; archived ones only when asked.")
    async def projects(
        self, info: Info[Context, None], include_archived: bool | None = False
    ) -> list[Project]:
        await info.context.require_viewer()
        return [
            Project.of(project)
            for project in await info.context.services.projects.list(bool(include_archived))
        ]


@strawberry.type
class ProjectMutation:
    @strawberry.mutation(description="Admins only. Projects are case-insensitive by default.")
    async def create_project(self, info: Info[Context, None], input: CreateProjectInput) -> Project:
        actor = await info.context.require_viewer()
        project = await info.context.services.projects.create(
            actor,
            input.slug,
            input.name,
            case_sensitive=bool(input.case_sensitive),
            default_ttl_seconds=input.default_ttl_seconds,
            force_release_policy=input.force_release_policy or projects.ForceReleasePolicy.ADMINS,
        )
        return Project.of(project)

    @strawberry.mutation(description="Admins only: rename, default TTL, LFS upstream, archive.")
    async def update_project(
        self, info: Info[Context, None], slug: str, input: UpdateProjectInput
    ) -> Project:
        actor = await info.context.require_viewer()
        project = await info.context.services.projects.update(
            actor,
            slug,
            name=_given(input.name),
            default_ttl_seconds=_given(input.default_ttl_seconds),
            clear_default_ttl=input.default_ttl_seconds is None,
            force_release_policy=_given(input.force_release_policy),
            archived=_given(input.archived),
            lfs_upstream_url=_cleared(input.lfs_upstream_url),
            lfs_upstream_authorization=_cleared(input.lfs_upstream_authorization),
        )
        return Project.of(project)
