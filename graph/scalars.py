"""Scalars of the client contract beyond Strawberry's own (`DateTime` is Strawberry's)."""

from typing import Any, NewType

import strawberry
from graphql import IntValueNode, ValueNode, value_from_ast_untyped
from strawberry.file_uploads import Upload

Long = NewType("Long", int)
JSON = NewType("JSON", object)

LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


def parse_long(value: Any) -> int:
    """A whole number that fits 64 bits (not a float, a string or a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"Long must be a whole number, not {value!r}")
    if not LONG_MIN <= value <= LONG_MAX:
        raise ValueError("Long must fit in 64 bits")
    return value


def parse_long_literal(node: ValueNode, _variables: Any = None) -> int:
    if not isinstance(node, IntValueNode):
        raise ValueError("Long must be a whole number")
    return parse_long(int(node.value))


def parse_upload(value: Any) -> Any:
    """A file part of a multipart request (Starlette's UploadFile), nothing else."""
    if not callable(getattr(value, "read", None)):
        raise ValueError(
            "Upload must be a file sent as a multipart request (the GraphQL multipart request"
            " spec), with the header X-Holdfast-Upload or Authorization"
        )
    return value


def refuse_upload_literal(node: ValueNode, _variables: Any = None) -> Any:
    raise ValueError("Upload must be a variable given as a file part of a multipart request")


SCALARS = {
    JSON: strawberry.scalar(
        name="JSON",
        description="Any JSON value.",
        serialize=lambda value: value,
        parse_value=lambda value: value,
        parse_literal=value_from_ast_untyped,
    ),
    Long: strawberry.scalar(
        name="Long",
        description="A 64-bit integer, serialised as a JSON number",
        serialize=int,
        parse_value=parse_long,
        parse_literal=parse_long_literal,
    ),
    Upload: strawberry.scalar(
        name="Upload",
        description="A file in a multipart request (the GraphQL multipart request spec).",
        serialize=lambda value: None,
        parse_value=parse_upload,
        parse_literal=refuse_upload_literal,
    ),
}
