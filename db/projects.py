"""Projects: the namespace every lock lives in; each has a stream that orders its lock events."""

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, insert_unless_exists, utcnow
from db.streams import Stream, create_stream


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    case_sensitive: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    archived_at: Mapped[datetime | None]
    default_ttl_seconds: Mapped[int | None]
    force_release_policy: Mapped[str] = mapped_column(String(16), default="admins")
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id"), unique=True)
    """The stream of this project's lock events."""
    lfs_upstream_url: Mapped[str | None] = mapped_column(String(2000))
    """The Git LFS server object transfers are forwarded to (`…/info/lfs`)."""
    lfs_upstream_authorization: Mapped[str | None] = mapped_column(Text)
    """The `Authorization` header sent upstream: a secret, never shown back."""


def stream_scope(slug: str) -> str:
    return f"locks:{slug}"


async def get_project_by_slug(
    session: AsyncSession, slug: str, *, for_update: bool = False
) -> Project | None:
    """The project; with `for_update` its row stays locked until commit."""
    query = select(Project).where(Project.slug == slug)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def get_project(session: AsyncSession, project_id: int) -> Project | None:
    return await session.get(Project, project_id)


async def get_project_by_stream(session: AsyncSession, stream_id: int) -> Project | None:
    query = select(Project).where(Project.stream_id == stream_id)
    return (await session.execute(query)).scalar_one_or_none()


async def get_project_with_seq(session: AsyncSession, slug: str) -> tuple[Project, int, int] | None:
    """The project, the seq of its newest lock event and the seq purged through, in one query."""
    query = (
        select(Project, Stream.last_seq, Stream.purged_through_seq)
        .join(Stream, Stream.id == Project.stream_id)
        .where(Project.slug == slug)
    )
    row = (await session.execute(query)).one_or_none()
    return None if row is None else (row[0], row[1], row[2])


async def list_projects(
    session: AsyncSession, *, include_archived: bool
) -> list[tuple[Project, int, int]]:
    """Projects in slug order, each with its stream's last and purged-through seqs."""
    query = (
        select(Project, Stream.last_seq, Stream.purged_through_seq)
        .join(Stream, Stream.id == Project.stream_id)
        .order_by(Project.slug)
    )
    if not include_archived:
        query = query.where(Project.archived_at.is_(None))
    return [(row[0], row[1], row[2]) for row in (await session.execute(query)).all()]


async def add_project_if_missing(session: AsyncSession, *, slug: str, name: str) -> None:
    stream = await create_stream(session, stream_scope(slug))
    await insert_unless_exists(
        session,
        Project,
        "slug",
        slug=slug,
        name=name,
        case_sensitive=False,
        created_at=utcnow(),
        stream_id=stream.id,
    )


async def add_project(session: AsyncSession, project: Project) -> Project:
    """Insert a project with a new stream of its own."""
    stream = await create_stream(session, stream_scope(project.slug))
    project.stream_id = stream.id
    session.add(project)
    await session.flush()
    return project
