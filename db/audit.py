"""The audit log: one append-only row per recorded change, in every area.

Kept apart from stream events (its own retention) and from users: an entry keeps the actor's
id and username after the user is deleted, so neither is a foreign key.
"""

from datetime import datetime

from sqlalchemy import Index, String, Text, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_resource", "resource_type", "resource_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor_id: Mapped[int | None] = mapped_column(index=True)
    """None: the system (a job, start-up)."""
    actor_username: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(255))
    changes: Mapped[str | None] = mapped_column(Text)
    """JSON: {"field": [before, after], …}."""
    snapshot: Mapped[str | None] = mapped_column(Text)
    """JSON: the whole resource as it was, on delete."""
    client_address: Mapped[str | None] = mapped_column(String(255))
    request_id: Mapped[str | None] = mapped_column(String(64))


async def page(
    session: AsyncSession,
    *,
    limit: int,
    resource_type: str | None = None,
    resource_id: str | None = None,
    actor_id: int | None = None,
    actor_username: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
) -> tuple[list[AuditEntry], int]:
    """Matching entries newest first (ids below `before_id`), and how many match in all."""
    conditions = []
    if resource_type is not None:
        conditions.append(AuditEntry.resource_type == resource_type)
    if resource_id is not None:
        conditions.append(AuditEntry.resource_id == resource_id)
    if actor_id is not None:
        conditions.append(AuditEntry.actor_id == actor_id)
    if actor_username is not None:
        conditions.append(func.lower(AuditEntry.actor_username) == actor_username.lower())
    if since is not None:
        conditions.append(AuditEntry.at >= since)
    if until is not None:
        conditions.append(AuditEntry.at <= until)
    total = (
        await session.execute(select(func.count()).select_from(AuditEntry).where(*conditions))
    ).scalar_one()
    query = select(AuditEntry).where(*conditions).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list((await session.execute(query)).scalars().all()), total


async def purge_before(session: AsyncSession, moment: datetime) -> int:
    result = await session.execute(delete(AuditEntry).where(AuditEntry.at < moment))
    return result.rowcount
