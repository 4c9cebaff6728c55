"""Projects: the namespaces locks live in."""

from db import projects as store
from db.engine import Database
from db.projects import Project

DEFAULT_PROJECT_SLUG = "default"


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
