"""Settings admins change at run time (their changes are in the audit log, db/audit.py)."""

from datetime import datetime

from sqlalchemy import String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base


class RuntimeSetting(Base):
    __tablename__ = "runtime_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    """JSON."""
    updated_at: Mapped[datetime]
    updated_by: Mapped[int | None]


async def stored_settings(session: AsyncSession) -> dict[str, RuntimeSetting]:
    rows = (await session.execute(select(RuntimeSetting))).scalars()
    return {row.name: row for row in rows}
