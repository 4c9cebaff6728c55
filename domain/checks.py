"""Checks of values a client gives, shared by every area: each takes the value and returns
what is stored, or raises `Invalid` with a message; the caller names the field (in the API's
camelCase, see `invalid`)."""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from domain.errors import BadUserInput


class Invalid(ValueError):
    """A value a check refused; the message says why, the caller names the field."""


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def invalid(name: str, message: str) -> BadUserInput:
    return BadUserInput(f"{camel(name)}: {message}", field=camel(name))


# -- checks -------------------------------------------------------------------------------------

Check = Callable[[Any], Any]


def text(limit: int, *, required: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if value is None:
            if required:
                raise Invalid("is required")
            return None
        if not isinstance(value, str):
            raise Invalid("must be text")
        value = value.strip()
        if not value:
            if required:
                raise Invalid("must not be empty")
            return None
        if len(value) > limit:
            raise Invalid(f"must be at most {limit} characters")
        if any(ord(char) < 32 for char in value if char not in "\t\n"):
            raise Invalid("must not contain control characters")
        return value

    return check


def count(*, low: int = 0, high: int = 2**31 - 1) -> Check:
    def check(value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid("must be a whole number")
        if not low <= value <= high:
            raise Invalid(f"must be between {low} and {high}")
        return value

    return check


def amount(*, high: float) -> Check:
    def check(value: Any) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid("must be a number")
        if not 0 < value <= high or value != value:
            raise Invalid(f"must be more than 0 and at most {high}")
        return float(value)

    return check


def choice(kind: type[enum.Enum], default: enum.Enum | None = None) -> Check:
    def check(value: Any) -> str | None:
        if value is None:
            return None if default is None else default.value
        if isinstance(value, kind):
            return value.value
        if isinstance(value, str) and value.upper() in kind.__members__:
            return value.upper()
        raise Invalid("must be one of " + ", ".join(kind.__members__))

    return check


def address(value: Any) -> str | None:
    """An IPv4 or IPv6 address, stored canonical (IPv6 compressed, lower case)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Invalid("must be an IP address")
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise Invalid(f"{value!r} is not an IPv4 or IPv6 address") from None


HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def hostname(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Invalid("must be a host name")
    name = value.strip().lower().rstrip(".")
    if len(name) > 253 or not all(HOST_LABEL.match(label) for label in name.split(".")):
        raise Invalid(f"{value!r} is not a valid host name")
    return name


COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def color(value: Any) -> str:
    if not isinstance(value, str) or not COLOR.match(value.strip()):
        raise Invalid("must be a colour like #1a2b3c")
    return value.strip().lower()


def http_url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2000:
        raise Invalid("must be a URL of at most 2000 characters")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("must be an http:// or https:// URL with a host")
    return value.strip()


def https_url(value: Any) -> str | None:
    """An https:// URL (stored as given, never fetched)."""
    url = http_url(value)
    if url is not None and urlsplit(url).scheme != "https":
        raise Invalid("must be an https:// URL")
    return url


@dataclass(frozen=True)
class Kind:
    """One kind of thing (a server, a part): its table, the fields a client sets with their
    checks, the ones a create needs, and which field each unique constraint is about."""

    name: str
    model: type
    fields: dict[str, Check]
    required: frozenset[str]
    unique: dict[str, str]
    """Constraint name (or `table.column` as SQLite says it) → the API field it is about."""

    def checked(self, values: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        """The stored form of `values` (only fields given), or BAD_USER_INPUT naming a field."""
        unknown = set(values) - set(self.fields)
        if unknown:
            raise invalid(sorted(unknown)[0], f"is not a field of a {self.name}")
        if creating:
            for name in sorted(self.required):
                if values.get(name) is None:
                    raise invalid(name, "is required")
        result = {}
        for name, value in values.items():
            try:
                result[name] = self.fields[name](value)
            except Invalid as error:
                raise invalid(name, str(error)) from None
            if name in self.required and result[name] is None:
                raise invalid(name, "is required")
        return result
