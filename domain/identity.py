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
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import identity as store
from db import server_state
from db.base import utcnow
from db.engine import Database
from db.identity import ApiToken, User
from domain.access import Role, require_admin
from domain.caches import SharedCache
from domain.errors import BadUserInput, Conflict, Forbidden, NotFound, Unauthenticated
from domain.mails import link_mail, notice_mail
from domain.pagination import Page, decode_cursor, encode_cursor, page_size
from domain.ratelimit import LoginThrottle

if TYPE_CHECKING:
    from domain.notify import Notifier

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


class Identity:
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

    # -- users -----------------------------------------------------------------------------

    async def _new_user(
        self, username: str, email: str, password: str, role: Role, *, only_if_first=False
    ) -> User | None:
        validate_username(username)
        email = validate_email(email)
        validate_password(password)
        user = User(
            username=username,
            email=email,
            password_hash=await self._hash(password),
            role=role.value,
            active=True,
        )
        taken = Conflict(f"the username {username!r} is taken", field="username")
        try:
            async with self.db.transaction() as session:
                if only_if_first and await store.count_users(session) > 0:
                    return None
                if await store.get_user_by_username(session, username) is not None:
                    raise taken
                await store.add(session, user)
        except IntegrityError:
            raise taken from None
        return user

    async def create_user(
        self, actor: User, username: str, email: str, password: str, role: Role | None
    ) -> User:
        require_admin(actor)
        return await self._new_user(username, email, password, role or Role.USER)

    async def register(
        self, username: str, email: str, password: str, client_address: str | None
    ) -> Session:
        """Create one's own account when registration is open, and sign in."""
        if not self.config.registration_open:
            raise Forbidden("registration is closed; ask an admin for an account")
        await self.throttle.hit("register", username, client_address)
        user = await self._new_user(username, email, password, Role.USER)
        async with self.db.transaction() as session:
            return await self._start_session(session, user, secrets.token_hex(16), utcnow())

    async def ensure_admin(
        self, username: str, email: str, password: str | None
    ) -> tuple[bool, str | None]:
        """Create the first admin when there are no users.

        Returns whether this call created it, and the password it generated when none was given.
        """
        async with self.db.read() as session:
            if await store.count_users(session) > 0:
                return False, None
        generated = None if password else secrets.token_urlsafe(15)
        try:
            created = await self._new_user(
                username, email, password or generated, Role.ADMIN, only_if_first=True
            )
        except Conflict:
            return False, None
        if created is None:
            return False, None
        return True, generated

    async def get_user(self, actor: User, user_id: int) -> User:
        if actor.id != user_id:
            require_admin(actor)
        async with self.db.read() as session:
            user = await store.get_user(session, user_id)
        if user is None:
            raise NotFound(f"no user with id {user_id}")
        return user

    async def list_users(self, actor: User, first: int | None, after: str | None) -> Page[User]:
        require_admin(actor)
        limit = page_size(first)
        after_id = decode_cursor("user", after)
        async with self.db.read() as session:
            users, total = await store.list_users(session, after_id=after_id, limit=limit + 1)
        return Page(
            items=users[:limit],
            cursors=[encode_cursor("user", user.id) for user in users[:limit]],
            total=total,
            has_next=len(users) > limit,
        )

    async def update_user(
        self,
        actor: User,
        user_id: int,
        *,
        email: str | None = None,
        role: Role | None = None,
        active: bool | None = None,
    ) -> User:
        require_admin(actor)
        now = utcnow()
        async with self.db.transaction() as session:
            user = await store.lock_user(session, user_id, exclusive=True)
            if user is None:
                raise NotFound(f"no user with id {user_id}")
            if email is not None:
                user.email = validate_email(email)
            losing_admin = (
                user.role == Role.ADMIN
                and user.active
                and ((role is not None and role != Role.ADMIN) or active is False)
            )
            if losing_admin and await store.count_active_admins(session, lock=True) <= 1:
                raise Conflict("the last active admin cannot be demoted or deactivated")
            if role is not None:
                user.role = role.value
            after = []
            if active is not None:
                if user.active and not active:
                    user.token_version += 1
                    await store.revoke_user_refresh_tokens(session, user.id, now)
                    after = await self._user_leaves(
                        session, user, actor, "the holder's account was deactivated"
                    )
                user.active = active
            await session.flush()
        await self._forget_user(user.id)
        for publish in after:
            await publish()
        return user

    async def _user_leaves(self, session, user: User, actor: User, reason: str) -> list:
        return [await hook(session, user, actor, reason) for hook in self._leaving]

    async def delete_user(self, actor: User, user_id: int) -> None:
        require_admin(actor)
        async with self.db.transaction() as session:
            user = await store.lock_user(session, user_id, exclusive=True)
            if user is None:
                raise NotFound(f"no user with id {user_id}")
            if (
                user.role == Role.ADMIN
                and user.active
                and await store.count_active_admins(session, lock=True) <= 1
            ):
                raise Conflict("the last active admin cannot be deleted")
            after = await self._user_leaves(
                session, user, actor, "the holder's account was deleted"
            )
            await store.delete_user(session, user)
        await self._forget_user(user_id)
        for publish in after:
            await publish()

    async def _set_password(self, session, user: User, password_hash: str) -> None:
        user.password_hash = password_hash
        user.token_version += 1
        await store.revoke_user_refresh_tokens(session, user.id, utcnow())

    async def reset_password(self, actor: User, user_id: int, new_password: str) -> User:
        """An admin sets a user's password; every session of that user ends."""
        require_admin(actor)
        validate_password(new_password, field="newPassword")
        password_hash = await self._hash(new_password)
        async with self.db.transaction() as session:
            user = await store.get_user(session, user_id)
            if user is None:
                raise NotFound(f"no user with id {user_id}")
            await self._set_password(session, user, password_hash)
        await self._forget_user(user_id)
        return user

    async def change_password(
        self, actor: User, current_password: str, new_password: str, client_address: str | None
    ) -> Session:
        """Change one's own password: other sessions end, this one gets fresh tokens.

        Throttled like login: a stolen access token must not become a password oracle.
        """
        validate_password(new_password, field="newPassword")
        attempt = await self.throttle.attempt(actor.username, client_address)
        if not await self._verify(actor.password_hash, current_password):
            raise BadUserInput("the current password is wrong", field="currentPassword")
        await attempt.succeeded()
        password_hash = await self._hash(new_password)
        async with self.db.transaction() as session:
            user = await store.get_user(session, actor.id)
            if user is None or user.password_hash != actor.password_hash:
                raise Conflict("the password changed meanwhile; sign in again")
            await self._set_password(session, user, password_hash)
            started = await self._start_session(session, user, secrets.token_hex(16), utcnow())
        await self._forget_user(actor.id)
        return started

    # -- links by mail: password reset, email change -------------------------------------

    def _require_mail(self, what: str) -> None:
        if not self.notifier.enabled:
            raise Forbidden(
                f"{what} needs mail, and this server sends none: ask an admin", reason="mail-off"
            )

    async def _account_token(self, session, user: User, purpose: str, new_email=None) -> str:
        secret = ACCOUNT_TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        await store.add(
            session,
            store.AccountToken(
                user_id=user.id,
                purpose=purpose,
                token_hash=digest(secret),
                new_email=new_email,
                created_at=now,
                expires_at=now + ACCOUNT_LINK_TTL,
            ),
        )
        return secret

    async def request_password_reset(self, email: str, client_address: str | None) -> None:
        """Mail a reset link to the account(s) with this address. The answer is the same
        whether or not one exists."""
        self._require_mail("Resetting a password")
        email = validate_email(email)
        await self.throttle.hit("reset", email.lower(), client_address)
        async with self.db.transaction() as session:
            for user in await store.active_users_with_email(session, email):
                token = await self._account_token(session, user, "password-reset")
                mail = link_mail(
                    "Reset your Holdfast password",
                    f"Someone asked to reset the password of the Holdfast account {user.username}.",
                    self.notifier.link("reset-password", token),
                    "Choose a new password",
                    "The link works once, for an hour. If you did not ask, ignore this message.",
                )
                await self.notifier.queue(session, "password-reset", user.email, mail)

    async def reset_password_with_link(self, token: str, new_password: str) -> None:
        """Set a new password from a reset link; every session of the account ends."""
        validate_password(new_password, field="newPassword")
        password_hash = await self._hash(new_password)
        async with self.db.transaction() as session:
            used = await store.use_account_token(session, digest(token), "password-reset", utcnow())
            user = None if used is None else await store.get_user(session, used.user_id)
            if user is None or not user.active:
                raise BadUserInput("this link is invalid, used or expired", field="token")
            await self._set_password(session, user, password_hash)
        await self._forget_user(user.id)

    async def request_email_change(
        self, actor: User, new_email: str, current_password: str
    ) -> None:
        """Mail a confirmation link to the new address; the email changes when it is used."""
        self._require_mail("Changing an email address")
        new_email = validate_email(new_email)
        if not await self._verify(actor.password_hash, current_password):
            raise BadUserInput("the current password is wrong", field="currentPassword")
        async with self.db.transaction() as session:
            token = await self._account_token(session, actor, "email-change", new_email)
            mail = link_mail(
                "Confirm your new Holdfast email address",
                f"The Holdfast account {actor.username} asked to use {new_email} from now on.",
                self.notifier.link("confirm-email", token),
                "Confirm this address",
                "The link works once, for an hour. If you did not ask, ignore this message.",
            )
            await self.notifier.queue(session, "email-change", new_email, mail)

    async def confirm_email_change(self, token: str) -> User:
        async with self.db.transaction() as session:
            used = await store.use_account_token(session, digest(token), "email-change", utcnow())
            user = None if used is None else await store.get_user(session, used.user_id)
            if user is None or not user.active:
                raise BadUserInput("this link is invalid, used or expired", field="token")
            old_email, user.email = user.email, used.new_email
            notice = notice_mail(
                "Your Holdfast email address changed",
                f"The Holdfast account {user.username} now uses {used.new_email} instead of "
                "this address. If you did not ask for this, tell an admin.",
            )
            await self.notifier.queue(session, "email-changed", old_email, notice)
            await session.flush()
        await self._forget_user(user.id)
        return user

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
        return NewApiToken(secret, token)

    async def list_api_tokens(self, actor: User) -> list[ApiToken]:
        async with self.db.read() as session:
            return await store.list_api_tokens(session, actor.id)

    async def revoke_api_token(self, actor: User, token_id: int) -> None:
        async with self.db.transaction() as session:
            if not await store.delete_api_token(session, token_id, actor.id):
                raise NotFound(f"you have no API token with id {token_id}")
        await self.principals.forget(f"token:{token_id}")
