"""Projects: the namespace every lock lives in."""

from datetime import datetime

from sqlalchemy import String, select
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


async def get_project_by_slug(session: AsyncSession, slug: str) -> Project | None:
    query = select(Project).where(Project.slug == slug)
    return (await session.execute(query)).scalar_one_or_none()


async def add_project_if_missing(session: AsyncSession, *, slug: str, name: str) -> None:
    await insert_unless_exists(
        session, Project, "slug", slug=slug, name=name, case_sensitive=False, created_at=utcnow()
    )
