"""Users, refresh tokens and API tokens: tables and the queries on them."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, utcnow


class User(Base):
    __tablename__ = "users"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    permissions: Mapped[str] = mapped_column(String(500), default="", server_default="")
    """What an admin granted beyond the role, space-separated (domain/access.py Permission)."""
    token_version: Mapped[int] = mapped_column(default=0)
    """Bumped when a password changes: access tokens minted before then stop working."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


Index("uq_users_username_lower", func.lower(User.username), unique=True)


class RefreshToken(Base):
    """One issued refresh token; rotation chains tokens of one login into a family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family: Mapped[str] = mapped_column(String(32), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class AccountToken(Base):
    """A single-use link sent by mail: a password reset or an email change."""

    __tablename__ = "account_tokens"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    new_email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


async def active_users_with_email(session: AsyncSession, email: str) -> list[User]:
    query = select(User).where(func.lower(User.email) == email.lower(), User.active.is_(True))
    return list((await session.execute(query)).scalars().all())


async def use_account_token(
    session: AsyncSession, token_hash: str, purpose: str, now: datetime
) -> AccountToken | None:
    """Claim an unused, unexpired token of `purpose`; None if there is none (or it was used)."""
    query = (
        select(AccountToken)
        .where(
            AccountToken.token_hash == token_hash,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > now,
        )
        .with_for_update()
    )
    token = (await session.execute(query)).scalar_one_or_none()
    if token is None:
        return None
    claimed = await session.execute(
        update(AccountToken)
        .where(AccountToken.id == token.id, AccountToken.used_at.is_(None))
        .values(used_at=now)
    )
    return token if claimed.rowcount == 1 else None


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def get_users(session: AsyncSession, user_ids: set[int]) -> list[User]:
    if not user_ids:
        return []
    return list((await session.execute(select(User).where(User.id.in_(user_ids)))).scalars())


async def lock_user(session: AsyncSession, user_id: int, *, exclusive: bool) -> User | None:
    """The user, with its row locked until commit: key-shared for a user acting, exclusive for
    changing who they are (deactivation waits for their writes in flight, and theirs for it)."""
    query = (
        select(User)
        .where(User.id == user_id)
        .with_for_update(read=not exclusive, key_share=not exclusive)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def get_user_by_username(session: AsyncSession, username: str) -> User | None:
    query = select(User).where(func.lower(User.username) == username.lower())
    return (await session.execute(query)).scalar_one_or_none()


async def count_users(session: AsyncSession) -> int:
    return (await session.execute(select(func.count()).select_from(User))).scalar_one()


async def count_active_admins(session: AsyncSession, *, lock: bool = False) -> int:
    """Active admins; with `lock`, their rows stay locked until commit (PostgreSQL)."""
    query = select(User.id).where(User.role == "admin", User.active.is_(True))
    if lock:
        query = query.with_for_update()
    return len((await session.execute(query)).scalars().all())


async def list_users(
    session: AsyncSession, *, after_id: int | None, limit: int
) -> tuple[list[User], int]:
    """A page of users in id order, and how many there are in all."""
    query = select(User).order_by(User.id).limit(limit)
    if after_id is not None:
        query = query.where(User.id > after_id)
    total = await count_users(session)
    return list((await session.execute(query)).scalars().all()), total


async def add(session: AsyncSession, row: Base) -> None:
    session.add(row)
    await session.flush()


async def delete_user(session: AsyncSession, user: User) -> None:
    await session.delete(user)
    await session.flush()


async def get_refresh_token(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    query = select(RefreshToken).where(RefreshToken.token_hash == token_hash)
    return (await session.execute(query)).scalar_one_or_none()


async def mark_refresh_token_used(session: AsyncSession, token_id: int, at: datetime) -> bool:
    """Claim a refresh token for rotation; False when another request claimed it first."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
        .values(used_at=at)
    )
    return result.rowcount == 1


async def revoke_refresh_family(session: AsyncSession, family: str, at: datetime) -> int:
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return result.rowcount


async def revoke_user_refresh_tokens(session: AsyncSession, user_id: int, at: datetime) -> int:
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return result.rowcount


async def get_api_token(session: AsyncSession, token_hash: str) -> ApiToken | None:
    query = select(ApiToken).where(ApiToken.token_hash == token_hash)
    return (await session.execute(query)).scalar_one_or_none()


async def get_api_token_by_id(session: AsyncSession, token_id: int) -> ApiToken | None:
    return await session.get(ApiToken, token_id)


async def list_api_tokens(session: AsyncSession, user_id: int) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
    return list((await session.execute(query)).scalars().all())


async def delete_api_token(session: AsyncSession, token_id: int, user_id: int) -> bool:
    result = await session.execute(
        delete(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id)
    )
    return result.rowcount == 1


async def touch_api_token(session: AsyncSession, token_id: int, at: datetime) -> None:
    await session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=at))
