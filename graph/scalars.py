"""Scalars of the client contract beyond Strawberry's own (`DateTime` is Strawberry's)."""

from typing import NewType

import strawberry

Long = strawberry.scalar(
    NewType("Long", int),
    name="Long",
    description="A 64-bit integer, serialised as a JSON number",
    serialize=int,
    parse_value=int,
)
