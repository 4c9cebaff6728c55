"""Relay-style pages: opaque cursors over a numeric key."""

import base64
import json
from dataclasses import dataclass
from typing import Generic, TypeVar

from domain.errors import BadUserInput

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_KEY = 2**31
"""Keys in cursors are 32-bit database ids."""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    total: int
    has_next: bool


def page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE_SIZE
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise BadUserInput(f"first must be between 0 and {MAX_PAGE_SIZE}", field="first")
    return first


def encode_cursor(kind: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        found_kind, key = base64.urlsafe_b64decode(padded).decode().split(":", 1)
        if found_kind == kind and key.isascii() and key.isdigit() and int(key) < MAX_KEY:
            return int(key)
    except (ValueError, UnicodeDecodeError):
        pass
    raise BadUserInput("after is not a cursor from this list", field="after")


def encode_position(kind: str, value: str | int, key: int) -> str:
    """A cursor after the row with sort value `value` and id `key` (lists sorted by a column)."""
    raw = json.dumps([kind, value, key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_position(kind: str, cursor: str | None) -> tuple[str | int, int] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        found_kind, value, key = json.loads(base64.urlsafe_b64decode(padded))
        if (
            found_kind == kind
            and isinstance(value, str | int)
            and not isinstance(value, bool)
            and isinstance(key, int)
            and 0 < key < MAX_KEY
        ):
            return value, key
    except (ValueError, TypeError, UnicodeDecodeError):
        pass
    raise BadUserInput("after is not a cursor from this list", field="after")
