"""Projects: the namespaces locks live in. Admins create, rename and archive them.

Every process keeps the projects it has read (a lock request names its project by slug); a
change is announced so every replica forgets the old version at once (domain.caches).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import projects as store
from db.base import utcnow
from db.engine import Database
from db.identity import User
from db.projects import Project
from domain import audit
from domain.access import require_admin
from domain.caches import SharedCache
from domain.errors import BadUserInput, Conflict, NotFound

DEFAULT_PROJECT_SLUG = "default"
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_NAME_LENGTH = 200
MAX_TTL_SECONDS = 365 * 86400
MAX_UPSTREAM_URL_LENGTH = 2000
MAX_UPSTREAM_AUTHORIZATION_LENGTH = 4096
AUDITED = (
    "slug",
    "name",
    "case_sensitive",
    "default_ttl_seconds",
    "force_release_policy",
    "archived_at",
    "lfs_upstream_url",
    "lfs_upstream_authorization",
)
"""What the audit log records of a project (the upstream authorization only as set or not)."""


class ForceReleasePolicy(StrEnum):
    ADMINS = "admins"
    EVERYONE = "everyone"


def validate_slug(slug: str) -> str:
    if not SLUG_PATTERN.match(slug):
        raise BadUserInput(
            "slug must be 1-64 lower-case letters, digits, '.', '_' or '-'", field="slug"
        )
    return slug


def validate_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise BadUserInput(f"name must be 1 to {MAX_NAME_LENGTH} characters", field="name")
    return name


def validate_ttl(seconds: int | None, field: str = "ttlSeconds") -> int | None:
    if seconds is not None and not 1 <= seconds <= MAX_TTL_SECONDS:
        raise BadUserInput(f"{field} must be between 1 and {MAX_TTL_SECONDS}", field=field)
    return seconds


def validate_lfs_upstream_url(url: str) -> str:
    """An http(s) URL without credentials in it (those go in the authorization field)."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if (
        len(url) > MAX_UPSTREAM_URL_LENGTH
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
    ):
        raise BadUserInput(
            "lfsUpstreamUrl must be an http(s) URL of a Git LFS server, without a query",
            field="lfsUpstreamUrl",
        )
    if parts.username is not None or parts.password is not None:
        raise BadUserInput(
            "put the upstream's credentials in lfsUpstreamAuthorization, not in the URL",
            field="lfsUpstreamUrl",
        )
    return url


def validate_lfs_upstream_authorization(value: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_UPSTREAM_AUTHORIZATION_LENGTH or not value.isprintable():
        raise BadUserInput(
            "lfsUpstreamAuthorization must be one header value, e.g. 'Bearer <token>'",
            field="lfsUpstreamAuthorization",
        )
    return value


@dataclass(frozen=True)
class ProjectState:
    """A project as read, with the seqs of its lock stream at that moment."""

    project: Project
    last_seq: int
    purged_through_seq: int = 0


async def ensure_project(db: Database, slug: str, name: str) -> Project:
    """The project with `slug`, created if missing (safe when replicas start together)."""
    async with db.transaction() as session:
        project = await store.get_project_by_slug(session, slug)
        if project is not None:
            return project
        await store.add_project_if_missing(session, slug=slug, name=name)
        project = await store.get_project_by_slug(session, slug)
        assert project is not None
        return project


def _not_found(slug: str) -> NotFound:
    return NotFound(f"no project {slug!r}", field="project")


async def find_project(session: AsyncSession, slug: str, *, for_update: bool = False) -> Project:
    project = await store.get_project_by_slug(session, slug.lower(), for_update=for_update)
    if project is None:
        raise _not_found(slug)
    return project


async def project_state(session: AsyncSession, slug: str) -> ProjectState:
    """The project and its stream's seqs, read together."""
    found = await store.get_project_with_seq(session, slug.lower())
    if found is None:
        raise _not_found(slug)
    return ProjectState(*found)


class Projects:
    def __init__(self, db: Database, cache: SharedCache) -> None:
        self.db = db
        self.cache = cache

    async def get(self, slug: str) -> Project | None:
        async with self.db.read() as session:
            return await store.get_project_by_slug(session, slug.lower())

    async def find(self, slug: str) -> ProjectState | None:
        async with self.db.read() as session:
            found = await store.get_project_with_seq(session, slug.lower())
        return None if found is None else ProjectState(*found)

    async def cached(self, slug: str) -> Project:
        """The project as this process last read it (NOT_FOUND when there is none)."""
        key = slug.lower()
        project = self.cache.get(key)
        if project is None:
            generation = self.cache.generation
            project = await self.get(key)
            if project is None:
                raise _not_found(slug)
            self.cache.put(key, project, [key], generation)
        return project

    async def state(self, slug: str) -> ProjectState:
        async with self.db.read() as session:
            return await project_state(session, slug)

    async def list(self, include_archived: bool = False) -> list[ProjectState]:
        async with self.db.read() as session:
            rows = await store.list_projects(session, include_archived=include_archived)
        return [ProjectState(*row) for row in rows]

    async def create(
        self,
        actor: User,
        slug: str,
        name: str,
        case_sensitive: bool = False,
        default_ttl_seconds: int | None = None,
        force_release_policy: ForceReleasePolicy = ForceReleasePolicy.ADMINS,
    ) -> ProjectState:
        require_admin(actor)
        project = Project(
            slug=validate_slug(slug),
            name=validate_name(name),
            case_sensitive=case_sensitive,
            default_ttl_seconds=validate_ttl(default_ttl_seconds, "defaultTtlSeconds"),
            force_release_policy=force_release_policy.value,
            created_at=utcnow(),
        )
        taken = Conflict(f"the project {slug!r} exists already", field="slug")
        try:
            async with self.db.transaction() as session:
                if await store.get_project_by_slug(session, project.slug) is not None:
                    raise taken
                await store.add_project(session, project)
                audit.record(
                    session,
                    actor=actor,
                    action="create",
                    resource_type="project",
                    resource_id=project.id,
                    after=audit.columns(project, *AUDITED),
                )
        except IntegrityError:
            raise taken from None
        await self.cache.forget(project.slug)
        return ProjectState(project, 0)

    async def update(
        self,
        actor: User,
        slug: str,
        *,
        name: str | None = None,
        default_ttl_seconds: int | None = None,
        clear_default_ttl: bool = False,
        force_release_policy: ForceReleasePolicy | None = None,
        archived: bool | None = None,
        lfs_upstream_url: str | None = None,
        lfs_upstream_authorization: str | None = None,
    ) -> ProjectState:
        """Only what is given changes; an empty `lfs_upstream_url` or authorization clears it."""
        require_admin(actor)
        async with self.db.transaction() as session:
            project = await find_project(session, slug, for_update=True)
            before = audit.columns(project, *AUDITED)
            if name is not None:
                project.name = validate_name(name)
            if clear_default_ttl:
                project.default_ttl_seconds = None
            elif default_ttl_seconds is not None:
                project.default_ttl_seconds = validate_ttl(default_ttl_seconds, "defaultTtlSeconds")
            if force_release_policy is not None:
                project.force_release_policy = force_release_policy.value
            if archived is not None:
                project.archived_at = (project.archived_at or utcnow()) if archived else None
            if lfs_upstream_url is not None:
                project.lfs_upstream_url = (
                    validate_lfs_upstream_url(lfs_upstream_url) if lfs_upstream_url else None
                )
            if lfs_upstream_authorization is not None:
                project.lfs_upstream_authorization = (
                    validate_lfs_upstream_authorization(lfs_upstream_authorization)
                    if lfs_upstream_authorization
                    else None
                )
            await session.flush()
            action = "update"
            if (before["archived_at"] is None) != (project.archived_at is None):
                action = "archive" if project.archived_at else "unarchive"
            audit.record(
                session,
                actor=actor,
                action=action,
                resource_type="project",
                resource_id=project.id,
                before=before,
                after=audit.columns(project, *AUDITED),
            )
            state = await project_state(session, project.slug)
        await self.cache.forget(project.slug)
        return state
