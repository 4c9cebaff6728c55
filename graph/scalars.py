"""Scalars of the client contract beyond Strawberry's own (`DateTime` is Strawberry's)."""

from typing import NewType

import strawberry

Long = NewType("Long", int)

SCALARS = {
    Long: strawberry.scalar(
        name="Long",
        description="A 64-bit integer, serialised as a JSON number",
        serialize=int,
        parse_value=int,
    )
}
