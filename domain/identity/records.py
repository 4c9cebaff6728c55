"""What identity's parts share: the shapes it hands out, its constants, and the checks of
usernames, addresses and passwords."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from db import server_state
from db.engine import Database
from db.identity import ApiToken, User
from domain.errors import BadUserInput

UserLeaving = Callable[[AsyncSession, User, User, str], Awaitable[Callable[[], Awaitable[None]]]]
"""Called inside the transaction that deactivates or deletes a user (the user's row locked for
update) with (session, user, actor, reason): release what they hold, and return what to run
after commit (publish the events)."""

API_TOKEN_PREFIX = "hf_"
ACCOUNT_TOKEN_PREFIX = "hfa_"
ACCOUNT_LINK_TTL = timedelta(hours=1)
REFRESH_TOKEN_PREFIX = "hfr_"
JWT_ALGORITHM = "HS256"
JWT_ISSUER = "holdfast"
API_TOKEN_TOUCH_INTERVAL = timedelta(seconds=60)
BASIC_PASSWORD_SECONDS = 300
BASIC_PASSWORDS_KEPT = 10_000
LOGIN_FAILED = "wrong username or password"

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
MAX_TOKEN_NAME_LENGTH = 100


@dataclass(frozen=True)
class IdentityConfig:
    jwt_secret: str
    access_token_ttl: int
    refresh_token_ttl: int
    registration_open: bool
    password_time_cost: int = 3
    password_memory_kib: int = 65536


@dataclass(frozen=True)
class Session:
    """What a successful login or refresh hands back."""

    access_token: str
    access_token_expires_at: datetime
    refresh_token: str
    user: User


@dataclass(frozen=True)
class Principal:
    """An authenticated caller, and when the credential they used stops working."""

    user: User
    expires_at: datetime | None


@dataclass(frozen=True)
class NewApiToken:
    secret: str
    token: ApiToken


def audited(user: User) -> dict[str, object]:
    """What the audit log records of a user (the password only as set or not)."""
    return {
        "username": user.username,
        "email": user.email,
        "role": user.role,
        "active": user.active,
        "permissions": user.permissions or None,
        "password": user.password_hash,
    }


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_username(username: str) -> str:
    if not USERNAME_PATTERN.match(username):
        raise BadUserInput(
            "username must be 2-64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit",
            field="username",
        )
    return username


def validate_email(email: str) -> str:
    email = email.strip()
    if len(email) > 254 or not EMAIL_PATTERN.match(email):
        raise BadUserInput("email is not a valid address", field="email")
    return email


def validate_password(password: str, field: str = "password") -> str:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH or not password.strip():
        raise BadUserInput(
            f"password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
            field=field,
        )
    return password


async def shared_jwt_secret(db: Database) -> str:
    """The signing key every replica uses when none is configured: made once, kept in the db."""
    async with db.transaction() as session:
        return await server_state.get_or_create_secret(
            session, "jwt_secret", secrets.token_urlsafe(48)
        )
