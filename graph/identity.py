"""Users, sign-in and API tokens in the GraphQL schema."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from db import identity as models
from domain import access, identity
from domain.pagination import Page
from domain.people import UserRef
from graph.context import Context, decode_id
from graph.pagination import PageInfo

Role = strawberry.enum(access.Role, name="Role")


@strawberry.type
class User:
    id: strawberry.ID
    username: str
    role: Role
    active: bool
    created_at: datetime | None
    _email: strawberry.Private[str | None]
    _permissions: strawberry.Private[list[str] | None] = None

    @strawberry.field(description="Shown to the user themself and to admins; null otherwise.")
    async def email(self, info: Info[Context, None]) -> str | None:
        if self._email is None:
            return None
        viewer = await info.context.viewer()
        if viewer is not None and (viewer.role == Role.ADMIN.value or str(viewer.id) == self.id):
            return self._email
        return None

    @classmethod
    def of_ref(cls, user: UserRef) -> User:
        """A user as a lock or event names them (no email)."""
        return cls(
            id=strawberry.ID(str(user.id)),
            username=user.username,
            role=Role(user.role),
            active=user.active,
            created_at=None,
            _email=None,
        )

    @classmethod
    def of(cls, user: models.User) -> User:
        return cls(
            id=strawberry.ID(str(user.id)),
            username=user.username,
            role=Role(user.role),
            active=user.active,
            created_at=user.created_at,
            _email=user.email,
            _permissions=sorted(access.permissions_of(user)),
        )

    @strawberry.field(
        description="What an admin granted beyond the role (e.g. parts.review); shown to the "
        "user themself and to admins, null otherwise."
    )
    def permissions(self, info: Info[Context, None]) -> list[str] | None:
        viewer = info.context.known_viewer()
        if self._permissions is None or viewer is None:
            return None
        if viewer.role == Role.ADMIN.value or str(viewer.id) == self.id:
            return self._permissions
        return None


@strawberry.type
class UserEdge:
    node: User
    cursor: str


@strawberry.type
class UserConnection:
    edges: list[UserEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def of(cls, page: Page[models.User]) -> UserConnection:
        return cls(
            edges=[
                UserEdge(node=User.of(user), cursor=cursor)
                for user, cursor in zip(page.items, page.cursors, strict=True)
            ],
            page_info=PageInfo.of(page),
            total_count=page.total,
        )


@strawberry.type
class AuthPayload:
    access_token: str
    refresh_token: str
    access_token_expires_at: datetime
    user: User

    @classmethod
    def of(cls, session: identity.Session) -> AuthPayload:
        return cls(
            access_token=session.access_token,
            refresh_token=session.refresh_token,
            access_token_expires_at=session.access_token_expires_at,
            user=User.of(session.user),
        )


@strawberry.type
class ApiToken:
    id: strawberry.ID
    name: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, token: models.ApiToken) -> ApiToken:
        return cls(
            id=strawberry.ID(str(token.id)),
            name=token.name,
            created_at=token.created_at,
            expires_at=token.expires_at,
            last_used_at=token.last_used_at,
        )


@strawberry.type(
    description="Returned once, when a token is created: the secret is never shown again."
)
class ApiTokenSecret:
    token: str
    api_token: ApiToken


@strawberry.input
class CreateUserInput:
    username: str
    email: str
    password: str
    role: Role | None = None


@strawberry.input
class RegisterInput:
    username: str
    email: str
    password: str


@strawberry.input(description="Only the fields given change.")
class UpdateUserInput:
    email: str | None = None
    role: Role | None = None
    active: bool | None = None
    permissions: list[str] | None = strawberry.field(
        default=None, description='Replaces what the user was granted, e.g. ["parts.review"].'
    )


def _identity(info: Info[Context, None]) -> identity.Identity:
    return info.context.services.identity


@strawberry.type
class IdentityQuery:
    @strawberry.field(description="The signed-in user, or null without credentials.")
    def me(self, info: Info[Context, None]) -> User | None:
        viewer = info.context.known_viewer()
        return None if viewer is None else User.of(viewer)

    @strawberry.field(description="One user: admins see anyone, others only themselves.")
    async def user(self, info: Info[Context, None], id: strawberry.ID) -> User:
        actor = await info.context.require_viewer()
        return User.of(await _identity(info).get_user(actor, decode_id(id)))

    @strawberry.field(description="Every user, for admins.")
    async def users(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> UserConnection:
        actor = await info.context.require_viewer()
        return UserConnection.of(await _identity(info).list_users(actor, first, after))

    @strawberry.field(description="The signed-in user's API tokens (never their secrets).")
    async def api_tokens(self, info: Info[Context, None]) -> list[ApiToken]:
        actor = await info.context.require_viewer()
        return [ApiToken.of(token) for token in await _identity(info).list_api_tokens(actor)]


@strawberry.type
class IdentityMutation:
    @strawberry.mutation
    async def login(self, info: Info[Context, None], username: str, password: str) -> AuthPayload:
        session = await _identity(info).login(username, password, info.context.client_address)
        return AuthPayload.of(session)

    @strawberry.mutation(description="Rotates: the refresh token given stops working.")
    async def refresh_token(self, info: Info[Context, None], refresh_token: str) -> AuthPayload:
        return AuthPayload.of(await _identity(info).refresh(refresh_token))

    @strawberry.mutation(description="Ends the login the refresh token belongs to.")
    async def logout(self, info: Info[Context, None], refresh_token: str) -> bool:
        return await _identity(info).logout(refresh_token)

    @strawberry.mutation(description="Create an account when registration is open.")
    async def register(self, info: Info[Context, None], input: RegisterInput) -> AuthPayload:
        session = await _identity(info).register(
            input.username, input.email, input.password, info.context.client_address
        )
        return AuthPayload.of(session)

    @strawberry.mutation(description="Ends every other session of the signed-in user.")
    async def change_password(
        self, info: Info[Context, None], current_password: str, new_password: str
    ) -> AuthPayload:
        actor = await info.context.require_viewer()
        return AuthPayload.of(
            await _identity(info).change_password(
                actor, current_password, new_password, info.context.client_address
            )
        )

    @strawberry.mutation(
        description="Mails a reset link to the account with this address. The answer is the "
        "same whether or not there is one."
    )
    async def request_password_reset(self, info: Info[Context, None], email: str) -> bool:
        await _identity(info).request_password_reset(email, info.context.client_address)
        return True

    @strawberry.mutation(description="Sets a new password from a mailed link; sessions end.")
    async def reset_password(
        self, info: Info[Context, None], token: str, new_password: str
    ) -> bool:
        await _identity(info).reset_password_with_link(token, new_password)
        return True

    @strawberry.mutation(
        description="Mails a confirmation link to the new address; the old one is told once "
        "the change is confirmed."
    )
    async def request_email_change(
        self, info: Info[Context, None], new_email: str, current_password: str
    ) -> bool:
        actor = await info.context.require_viewer()
        await _identity(info).request_email_change(actor, new_email, current_password)
        return True

    @strawberry.mutation(description="Uses a mailed link: the account's email changes.")
    async def confirm_email_change(self, info: Info[Context, None], token: str) -> User:
        return User.of(await _identity(info).confirm_email_change(token))

    @strawberry.mutation
    async def create_user(self, info: Info[Context, None], input: CreateUserInput) -> User:
        actor = await info.context.require_viewer()
        user = await _identity(info).create_user(
            actor, input.username, input.email, input.password, input.role
        )
        return User.of(user)

    @strawberry.mutation(description="Deactivating a user ends their sessions and tokens at once.")
    async def update_user(
        self, info: Info[Context, None], id: strawberry.ID, input: UpdateUserInput
    ) -> User:
        actor = await info.context.require_viewer()
        user = await _identity(info).update_user(
            actor,
            decode_id(id),
            email=input.email,
            role=input.role,
            active=input.active,
            permissions=input.permissions,
        )
        return User.of(user)

    @strawberry.mutation(description="An admin sets a new password; the user's sessions end.")
    async def reset_user_password(
        self, info: Info[Context, None], id: strawberry.ID, new_password: str
    ) -> User:
        actor = await info.context.require_viewer()
        return User.of(await _identity(info).reset_password(actor, decode_id(id), new_password))

    @strawberry.mutation
    async def delete_user(self, info: Info[Context, None], id: strawberry.ID) -> bool:
        actor = await info.context.require_viewer()
        await _identity(info).delete_user(actor, decode_id(id))
        return True

    @strawberry.mutation
    async def create_api_token(
        self, info: Info[Context, None], name: str, expires_at: datetime | None = None
    ) -> ApiTokenSecret:
        actor = await info.context.require_viewer()
        created = await _identity(info).create_api_token(actor, name, expires_at)
        return ApiTokenSecret(token=created.secret, api_token=ApiToken.of(created.token))

    @strawberry.mutation
    async def revoke_api_token(self, info: Info[Context, None], id: strawberry.ID) -> bool:
        actor = await info.context.require_viewer()
        await _identity(info).revoke_api_token(actor, decode_id(id))
        return True
