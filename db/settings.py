"""Settings admins change at run time, and the record of every change."""

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


class SettingChange(Base):
    __tablename__ = "setting_changes"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[int | None]
    changed_by_username: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


async def stored_settings(session: AsyncSession) -> dict[str, RuntimeSetting]:
    rows = (await session.execute(select(RuntimeSetting))).scalars()
    return {row.name: row for row in rows}


async def recent_changes(session: AsyncSession, limit: int) -> list[SettingChange]:
    query = select(SettingChange).order_by(SettingChange.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars().all())
