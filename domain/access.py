"""Who may do what: roles and the checks every area shares (a leaf: it imports no area)."""

from enum import StrEnum

from db.identity import User
from domain.errors import Forbidden


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


def is_admin(actor: User) -> bool:
    return actor.role == Role.ADMIN


def require_admin(actor: User) -> None:
    if not is_admin(actor):
        raise Forbidden("only an admin may do this")
