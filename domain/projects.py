"""Projects: the namespaces locks live in. Admins create, rename and archive them."""

import re
from enum import StrEnum
from urllib.parse import urlsplit

from db import projects as store
from db.base import utcnow
from db.engine import Database
from db.identity import User
from db.projects import Project
from domain.errors import BadUserInput, Conflict, NotFound
from domain.identity import require_admin

DEFAULT_PROJECT_SLUG = "default"
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_NAME_LENGTH = 200
MAX_TTL_SECONDS = 365 * 86400
MAX_UPSTREAM_URL_LENGTH = 2000
MAX_UPSTREAM_AUTHORIZATION_LENGTH = 4096


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


async def find_project(session, slug: str, *, for_update: bool = False) -> Project:
    project = await store.get_project_by_slug(session, slug.lower(), for_update=for_update)
    if project is None:
        raise NotFound(f"no project {slug!r}", field="project")
    return project


class Projects:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, slug: str) -> Project | None:
        async with self.db.read() as session:
            return await store.get_project_by_slug(session, slug.lower())

    async def list(self, include_archived: bool = False) -> list[Project]:
        async with self.db.read() as session:
            return await store.list_projects(session, include_archived=include_archived)

    async def create(
        self,
        actor: User,
        slug: str,
        name: str,
        case_sensitive: bool = False,
        default_ttl_seconds: int | None = None,
        force_release_policy: ForceReleasePolicy = ForceReleasePolicy.ADMINS,
    ) -> Project:
        require_admin(actor)
        project = Project(
            slug=validate_slug(slug),
            name=validate_name(name),
            case_sensitive=case_sensitive,
            default_ttl_seconds=validate_ttl(default_ttl_seconds, "defaultTtlSeconds"),
            force_release_policy=force_release_policy.value,
            created_at=utcnow(),
            last_seq=0,
            last_fencing_token=0,
            purged_through_seq=0,
        )
        async with self.db.transaction() as session:
            if await store.get_project_by_slug(session, project.slug) is not None:
                raise Conflict(f"the project {slug!r} exists already", field="slug")
            session.add(project)
            await session.flush()
        return project

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
    ) -> Project:
        """Only what is given changes; an empty `lfs_upstream_url` or authorization clears it."""
        require_admin(actor)
        async with self.db.transaction() as session:
            project = await find_project(session, slug, for_update=True)
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
            return project
