"""Managing accounts: creating, changing and removing users, passwords, and the links mailed
for a password reset or an email change. The half of `Identity` that changes who exists."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from db import identity as store
from db.base import utcnow
from db.engine import Database
from db.identity import User
from domain import audit
from domain.access import Role, checked_permissions, require_admin
from domain.errors import BadUserInput, Conflict, Forbidden, NotFound
from domain.identity.records import (
    ACCOUNT_LINK_TTL,
    ACCOUNT_TOKEN_PREFIX,
    IdentityConfig,
    Session,
    UserLeaving,
    audited,
    digest,
    validate_email,
    validate_password,
    validate_username,
)
from domain.mails import link_mail, notice_mail
from domain.pagination import Page, decode_cursor, encode_cursor, page_size
from domain.ratelimit import LoginThrottle

if TYPE_CHECKING:
    from domain.notify import Notifier


class Accounts:
    """Mixed into `Identity` (domain/identity/__init__.py), which sets these attributes and
    provides `_hash`, `_verify` (argon2 in a thread), `_start_session` and `_forget_user`."""

    db: Database
    config: IdentityConfig
    throttle: LoginThrottle
    notifier: Notifier
    _leaving: list[UserLeaving]

    async def _new_user(
        self,
        actor: User | None,
        username: str,
        email: str,
        password: str,
        role: Role,
        *,
        only_if_first=False,
    ) -> User | None:
        """Create a user; `actor` None: the user creates themself (registration), or the
        system does (the first admin)."""
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
                audit.record(
                    session,
                    actor=actor or (None if only_if_first else user),
                    action="create",
                    resource_type="user",
                    resource_id=user.id,
                    after=audited(user),
                )
        except IntegrityError:
            raise taken from None
        return user

    async def create_user(
        self, actor: User, username: str, email: str, password: str, role: Role | None
    ) -> User:
        require_admin(actor)
        return await self._new_user(actor, username, email, password, role or Role.USER)

    async def register(
        self, username: str, email: str, password: str, client_address: str | None
    ) -> Session:
        """Create one's own account when registration is open, and sign in."""
        if not self.config.registration_open:
            raise Forbidden("registration is closed; ask an admin for an account")
        await self.throttle.hit("register", username, client_address)
        user = await self._new_user(None, username, email, password, Role.USER)
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
                None, username, email, password or generated, Role.ADMIN, only_if_first=True
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
        permissions: list[str] | None = None,
    ) -> User:
        require_admin(actor)
        granted = None if permissions is None else checked_permissions(permissions)
        now = utcnow()
        async with self.db.transaction() as session:
            user = await store.lock_user(session, user_id, exclusive=True)
            if user is None:
                raise NotFound(f"no user with id {user_id}")
            before = audited(user)
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
            if granted is not None:
                user.permissions = granted
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
            audit.record(
                session,
                actor=actor,
                action="update",
                resource_type="user",
                resource_id=user.id,
                before=before,
                after=audited(user),
            )
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
            audit.record(
                session,
                actor=actor,
                action="delete",
                resource_type="user",
                resource_id=user.id,
                before=audited(user),
            )
            await store.delete_user(session, user)
        await self._forget_user(user_id)
        for publish in after:
            await publish()

    async def _set_password(
        self, session, user: User, password_hash: str, actor: User, action: str
    ) -> None:
        """Set the password and end the user's sessions; audited as `action` (the entry
        says only that the password changed)."""
        before = audited(user)
        user.password_hash = password_hash
        user.token_version += 1
        await store.revoke_user_refresh_tokens(session, user.id, utcnow())
        audit.record(
            session,
            actor=actor,
            action=action,
            resource_type="user",
            resource_id=user.id,
            before=before,
            after=audited(user),
        )

    async def reset_password(self, actor: User, user_id: int, new_password: str) -> User:
        """An admin sets a user's password; every session of that user ends."""
        require_admin(actor)
        validate_password(new_password, field="newPassword")
        password_hash = await self._hash(new_password)
        async with self.db.transaction() as session:
            user = await store.get_user(session, user_id)
            if user is None:
                raise NotFound(f"no user with id {user_id}")
            await self._set_password(session, user, password_hash, actor, "reset_password")
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
            await self._set_password(session, user, password_hash, actor, "change_password")
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
            await self._set_password(session, user, password_hash, user, "reset_password")
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
            audit.record(
                session,
                actor=user,
                action="update",
                resource_type="user",
                resource_id=user.id,
                before={"email": old_email},
                after={"email": user.email},
            )
            notice = notice_mail(
                "Your Holdfast email address changed",
                f"The Holdfast account {user.username} now uses {used.new_email} instead of "
                "this address. If you did not ask for this, tell an admin.",
            )
            await self.notifier.queue(session, "email-changed", old_email, notice)
            await session.flush()
        await self._forget_user(user.id)
        return user
