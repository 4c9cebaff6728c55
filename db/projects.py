"""Projects: the namespace every lock lives in, and the counters that order its events."""

from datetime import datetime

from sqlalchemy import BigInteger, String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, insert_unless_exists, utcnow


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
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    """The seq of the newest lock event; taken under the row lock, so seqs follow commits."""
    last_fencing_token: Mapped[int] = mapped_column(BigInteger, default=0)
    purged_through_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    """Events with seq at or below this were removed by the retention job."""
    lfs_upstream_url: Mapped[str | None] = mapped_column(String(2000))
    """The Git LFS server object transfers are forwarded to (`…/info/lfs`)."""
    lfs_upstream_authorization: Mapped[str | None] = mapped_column(Text)
    """The `Authorization` header sent upstream: a secret, never shown back."""


async def get_project_by_slug(
    session: AsyncSession, slug: str, *, for_update: bool = False
) -> Project | None:
    """The project; with `for_update` its row stays locked until commit (writers queue)."""
    query = select(Project).where(Project.slug == slug)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def get_project(
    session: AsyncSession, project_id: int, *, for_update: bool = False
) -> Project | None:
    query = select(Project).where(Project.id == project_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def list_projects(session: AsyncSession, *, include_archived: bool) -> list[Project]:
    query = select(Project).order_by(Project.slug)
    if not include_archived:
        query = query.where(Project.archived_at.is_(None))
    return list((await session.execute(query)).scalars().all())


async def add_project_if_missing(session: AsyncSession, *, slug: str, name: str) -> None:
    await insert_unless_exists(
        session, Project, "slug", slug=slug, name=name, case_sensitive=False, created_at=utcnow()
    )
