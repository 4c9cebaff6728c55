"""People as holds and events name them: an id, a username, a role, whether active."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from db.identity import User, get_users


@dataclass(frozen=True)
class UserRef:
    id: int
    username: str
    role: str
    active: bool

    @classmethod
    def of(cls, user: User) -> UserRef:
        return cls(user.id, user.username, user.role, user.active)


async def user_refs(session: AsyncSession, user_ids: set[int]) -> dict[int, UserRef]:
    return {user.id: UserRef.of(user) for user in await get_users(session, user_ids)}


def missing_user(user_id: int, username: str | None = None) -> UserRef:
    """A user a hold or event names who has since been deleted."""
    return UserRef(user_id, username or "(deleted)", "user", False)
