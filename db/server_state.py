"""Values the server generates once and every replica must share (e.g. the JWT key)."""

from datetime import datetime

from sqlalchemy import String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, insert_unless_exists, utcnow


class ServerSecret(Base):
    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


async def get_secret(session: AsyncSession, name: str) -> str | None:
    query = select(ServerSecret.value).where(ServerSecret.name == name)
    return (await session.execute(query)).scalar_one_or_none()


async def get_or_create_secret(session: AsyncSession, name: str, candidate: str) -> str:
    """The stored value of `name`, storing `candidate` first if there is none (race-safe)."""
    await insert_unless_exists(
        session, ServerSecret, "name", name=name, value=candidate, created_at=utcnow()
    )
    value = await get_secret(session, name)
    assert value is not None
    return value
