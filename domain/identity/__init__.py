"""Who is calling: users, passwords, access and refresh tokens, API tokens.

Access tokens are short-lived HS256 JWTs. Refresh tokens and API tokens are random strings
stored only as SHA-256 digests; refresh tokens rotate, and reusing a rotated one revokes its
whole family (the login it came from).

Who a credential belongs to is kept per process (domain.caches): a change to a user (deactivated,
password changed, role changed, deleted) or a revoked API token is announced after its commit,
and every replica forgets at once, so revocation takes effect immediately without a database
read on every request.

Identity knows no area: an area that holds things for users registers what happens to them
when a user is deactivated or deleted (`when_user_leaves`).

Signing in and credentials are here; managing accounts in accounts.py; what they share in
records.py.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from db import identity as store
from db.base import utcnow
from db.engine import Database
from db.identity import ApiToken, User
from domain import audit
from domain.caches import SharedCache
from domain.errors import BadUserInput, NotFound, Unauthenticated
from domain.identity.accounts import Accounts
from domain.identity.records import (
    API_TOKEN_PREFIX,
    API_TOKEN_TOUCH_INTERVAL,
    BASIC_PASSWORD_SECONDS,
    BASIC_PASSWORDS_KEPT,
    JWT_ALGORITHM,
    JWT_ISSUER,
    LOGIN_FAILED,
    MAX_TOKEN_NAME_LENGTH,
    REFRESH_TOKEN_PREFIX,
    IdentityConfig,
    NewApiToken,
    Principal,
    Session,
    UserLeaving,
    digest,
    shared_jwt_secret,
    validate_email,
    validate_password,
    validate_username,
)
from domain.ratelimit import LoginThrottle

if TYPE_CHECKING:
    from domain.notify import Notifier

__all__ = [
    "Identity",
    "IdentityConfig",
    "Principal",
    "shared_jwt_secret",
    "validate_email",
    "validate_password",
    "validate_username",
]


class Identity(Accounts):
    def __init__(
        self,
        db: Database,
        config: IdentityConfig,
        throttle: LoginThrottle,
        notifier: Notifier,
        principals: SharedCache,
    ) -> None:
        self.db = db
        self.config = config
        self.throttle = throttle
        self.notifier = notifier
        self.principals = principals
        """Who each recently seen credential belongs to, and users by id."""
        self._leaving: list[UserLeaving] = []
        self._touched: dict[int, datetime] = {}
        self._hasher = PasswordHasher(
            time_cost=config.password_time_cost, memory_cost=config.password_memory_kib
        )
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        self._basic_key = secrets.token_bytes(32)
        self._basic_passwords: dict[bytes, tuple[int, int, float]] = {}
        """Verified Basic passwords: keyed digest → (user id, token version, valid until)."""

    # -- passwords: argon2 runs in a thread, never inside a transaction ---------------------

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        def verify() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(verify)

    # -- tokens ----------------------------------------------------------------------------

    def _access_token(self, user: User, now: datetime) -> tuple[str, datetime]:
        expires_at = now + timedelta(seconds=self.config.access_token_ttl)
        claims = {
            "iss": JWT_ISSUER,
            "sub": str(user.id),
            "ver": user.token_version,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
        }
        token = jwt.encode(claims, self.config.jwt_secret, algorithm=JWT_ALGORITHM)
        return token, expires_at.replace(microsecond=0)

    async def _start_session(self, session, user: User, family: str, now: datetime) -> Session:
        refresh_token = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)
        await store.add(
            session,
            store.RefreshToken(
                user_id=user.id,
                family=family,
                token_hash=digest(refresh_token),
                created_at=now,
                expires_at=now + timedelta(seconds=self.config.refresh_token_ttl),
            ),
        )
        access_token, expires_at = self._access_token(user, now)
        return Session(access_token, expires_at, refresh_token, user)

    def when_user_leaves(self, hook: UserLeaving) -> None:
        self._leaving.append(hook)

    async def _forget_user(self, user_id: int) -> None:
        await self.principals.forget(f"user:{user_id}")

    async def authenticate(self, bearer: str) -> Principal:
        """The active user a bearer credential (JWT or API token) belongs to."""
        key = ("bearer", digest(bearer))
        now = utcnow()
        cached = self.principals.get(key)
        if cached is not None and (cached[0].expires_at is None or cached[0].expires_at > now):
            principal, token_id = cached
            if token_id is not None:
                await self._touch(token_id, now)
            return principal
        generation = self.principals.generation
        principal, token_id = await self._authenticate(bearer, now)
        tags = [f"user:{principal.user.id}"] + ([f"token:{token_id}"] if token_id else [])
        self.principals.put(key, (principal, token_id), tags, generation)
        return principal

    async def _touch(self, token_id: int, now: datetime) -> None:
        """Record that an API token was used (at most once a minute per token)."""
        last = self._touched.get(token_id)
        if last is not None and now - last <= API_TOKEN_TOUCH_INTERVAL:
            return
        self._touched[token_id] = now
        if len(self._touched) > BASIC_PASSWORDS_KEPT:
            self._touched = {token_id: now}
        async with self.db.transaction() as session:
            await store.touch_api_token(session, token_id, now)

    async def _authenticate(self, bearer: str, now: datetime) -> tuple[Principal, int | None]:
        if bearer.startswith(API_TOKEN_PREFIX):
            async with self.db.read() as session:
                token = await store.get_api_token(session, digest(bearer))
                if token is None or (token.expires_at is not None and token.expires_at <= now):
                    raise Unauthenticated("the API token is invalid, expired or revoked")
                user = await store.get_user(session, token.user_id)
            if user is None or not user.active:
                raise Unauthenticated("the API token's user is not active")
            if token.last_used_at is not None:
                self._touched.setdefault(token.id, token.last_used_at)
            await self._touch(token.id, now)
            return Principal(user, token.expires_at), token.id
        try:
            claims = jwt.decode(
                bearer,
                self.config.jwt_secret,
                algorithms=[JWT_ALGORITHM],
                issuer=JWT_ISSUER,
                options={"require": ["exp", "iat", "sub", "iss"]},
            )
            user_id = int(claims["sub"])
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the access token has expired", reason="expired") from None
        except (jwt.InvalidTokenError, ValueError):
            raise Unauthenticated("the access token is invalid") from None
        user = await self._user(user_id)
        if user is None or not user.active or claims.get("ver") != user.token_version:
            raise Unauthenticated("the access token has been revoked")
        return Principal(user, datetime.fromtimestamp(claims["exp"], UTC)), None

    async def _user(self, user_id: int) -> User | None:
        """The user as stored (cached in this process until they change)."""
        key = ("user", user_id)
        user = self.principals.get(key)
        if user is None:
            generation = self.principals.generation
            async with self.db.read() as session:
                user = await store.get_user(session, user_id)
            if user is not None:
                self.principals.put(key, user, [f"user:{user_id}"], generation)
        return user

    async def _check_password(
        self, username: str, password: str, client_address: str | None
    ) -> User:
        """The active user with this username and password. A failure counts against the
        sign-in limits of the account and the address (domain.ratelimit); an unknown user costs
        the same hash check as a wrong password."""
        attempt = await self.throttle.attempt(username, client_address)
        async with self.db.read() as session:
            found = await store.get_user_by_username(session, username)
        valid = await self._verify(found.password_hash if found else self._dummy_hash, password)
        if found is None or not valid or not found.active:
            raise Unauthenticated(LOGIN_FAILED)
        await attempt.succeeded()
        return found

    async def authenticate_basic(
        self, username: str, secret: str, client_address: str | None
    ) -> Principal:
        """HTTP Basic (Git LFS): a username with one of their API tokens, or their password.

        A password counts as a login attempt, like `login`. Clients send Basic credentials
        with every request, so a verified password is remembered in this process for a few
        minutes (by a keyed digest, never in clear), as long as the user's token version (bumped
        by a password change or deactivation) stays the same.
        """
        if secret.startswith(API_TOKEN_PREFIX):
            principal = await self.authenticate(secret)
            if principal.user.username.lower() != username.lower():
                raise Unauthenticated("the API token belongs to another user")
            return principal
        key = hmac.digest(self._basic_key, f"{username.lower()}\0{secret}".encode(), "sha256")
        remembered = self._basic_passwords.get(key)
        if remembered is not None and remembered[2] > time.monotonic():
            user = await self._user(remembered[0])
            if user is not None and user.active and user.token_version == remembered[1]:
                return Principal(user, None)
            self._basic_passwords.pop(key, None)
        found = await self._check_password(username, secret, client_address)
        if len(self._basic_passwords) >= BASIC_PASSWORDS_KEPT:
            self._basic_passwords.clear()
        self._basic_passwords[key] = (
            found.id,
            found.token_version,
            time.monotonic() + BASIC_PASSWORD_SECONDS,
        )
        return Principal(found, None)

    async def login(self, username: str, password: str, client_address: str | None) -> Session:
        found = await self._check_password(username, password, client_address)
        new_hash = None
        if self._hasher.check_needs_rehash(found.password_hash):
            new_hash = await self._hash(password)
        async with self.db.transaction() as session:
            user = await store.get_user(session, found.id)
            if user is None or not user.active:
                raise Unauthenticated(LOGIN_FAILED)
            if new_hash is not None:
                user.password_hash = new_hash
            session_ = await self._start_session(session, user, secrets.token_hex(16), utcnow())
        if new_hash is not None:
            await self._forget_user(user.id)
        return session_

    async def refresh(self, refresh_token: str) -> Session:
        now = utcnow()
        reused = False
        async with self.db.transaction() as session:
            token = await store.get_refresh_token(session, digest(refresh_token))
            if token is None or token.revoked_at is not None or token.expires_at <= now:
                raise Unauthenticated("the refresh token is invalid, expired or revoked")
            user = await store.get_user(session, token.user_id)
            if user is None or not user.active:
                raise Unauthenticated("the refresh token is invalid, expired or revoked")
            if token.used_at is None and await store.mark_refresh_token_used(
                session, token.id, now
            ):
                return await self._start_session(session, user, token.family, now)
            reused = True
        if reused:
            async with self.db.transaction() as session:
                await store.revoke_refresh_family(session, token.family, now)
        raise Unauthenticated(
            "the refresh token was already used; every session of that login is now signed out",
            reason="reused",
        )

    async def logout(self, refresh_token: str) -> bool:
        async with self.db.transaction() as session:
            token = await store.get_refresh_token(session, digest(refresh_token))
            if token is None or token.revoked_at is not None:
                return False
            await store.revoke_refresh_family(session, token.family, utcnow())
            return True

    # -- API tokens ------------------------------------------------------------------------

    async def create_api_token(
        self, actor: User, name: str, expires_at: datetime | None
    ) -> NewApiToken:
        name = name.strip()
        if not 1 <= len(name) <= MAX_TOKEN_NAME_LENGTH:
            raise BadUserInput(
                f"name must be 1 to {MAX_TOKEN_NAME_LENGTH} characters", field="name"
            )
        now = utcnow()
        if expires_at is not None and expires_at.tzinfo is None:
            raise BadUserInput("expiresAt needs a UTC offset", field="expiresAt")
        if expires_at is not None and expires_at <= now:
            raise BadUserInput("expiresAt must be in the future", field="expiresAt")
        secret = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = ApiToken(
            user_id=actor.id,
            name=name,
            token_hash=digest(secret),
            created_at=now,
            expires_at=expires_at,
        )
        async with self.db.transaction() as session:
            await store.add(session, token)
            audit.record(
                session,
                actor=actor,
                action="create",
                resource_type="api_token",
                resource_id=token.id,
                after=audit.columns(token, "user_id", "name", "expires_at"),
            )
        return NewApiToken(secret, token)

    async def list_api_tokens(self, actor: User) -> list[ApiToken]:
        async with self.db.read() as session:
            return await store.list_api_tokens(session, actor.id)

    async def revoke_api_token(self, actor: User, token_id: int) -> None:
        async with self.db.transaction() as session:
            token = await store.get_api_token_by_id(session, token_id)
            if token is None or token.user_id != actor.id:
                raise NotFound(f"you have no API token with id {token_id}")
            if not await store.delete_api_token(session, token_id, actor.id):
                raise NotFound(f"you have no API token with id {token_id}")
            audit.record(
                session,
                actor=actor,
                action="delete",
                resource_type="api_token",
                resource_id=token_id,
                before=audit.columns(
                    token, "user_id", "name", "created_at", "expires_at", "last_used_at"
                ),
            )
        await self.principals.forget(f"token:{token_id}")
