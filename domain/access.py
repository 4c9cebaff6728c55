"""Who may do what: roles and the checks every area shares (a leaf: it imports no area)."""

from enum import StrEnum

from db.identity import User
from domain.errors import BadUserInput, Forbidden


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


class Permission(StrEnum):
    """What an admin grants a user beyond the role, per area (admins may do all of it)."""

    PARTS_REVIEW = "parts.review"
    """Approve parts for making, and revert completed ones."""


def permissions_of(user: User) -> frozenset[str]:
    return frozenset((user.permissions or "").split())


def may(actor: User, permission: Permission) -> bool:
    return is_admin(actor) or permission.value in permissions_of(actor)


def require(actor: User, permission: Permission, what: str) -> None:
    if not may(actor, permission):
        raise Forbidden(f"only an admin or a user granted {permission.value} may {what}")


def checked_permissions(given: list[str]) -> str:
    """The stored form of granted permissions; an unknown one is BAD_USER_INPUT."""
    known = {permission.value for permission in Permission}
    for name in given:
        if name not in known:
            raise BadUserInput(
                f"{name!r} is not a permission (known: {', '.join(sorted(known))})",
                field="permissions",
            )
    return " ".join(sorted(set(given)))


def is_admin(actor: User) -> bool:
    return actor.role == Role.ADMIN


def require_admin(actor: User) -> None:
    if not is_admin(actor):
        raise Forbidden("only an admin may do this")
