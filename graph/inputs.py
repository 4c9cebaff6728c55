"""Every string a client sends is checked once, at the boundary, before any resolver runs.

NUL and other control characters have no business in a name, a path or a token, and NUL does
not even fit in a PostgreSQL text value. A string argument (or input field, at any depth, in
the document or in the variables) that holds one is BAD_USER_INPUT naming it. Free text
(`MULTILINE`) may hold tabs and line breaks.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLSchema,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    VariableNode,
    Visitor,
    get_nullable_type,
    visit,
)

MULTILINE = frozenset({"comment", "message", "description", "notes"})
"""Arguments and input fields of free text: they may hold tab, line feed and carriage return."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DOCUMENTS_KEPT = 1024


def bad_character(name: str, value: str) -> str | None:
    """The first character `value` may not hold as `name`, or None."""
    found = (_CONTROL_IN_TEXT if name in MULTILINE else _CONTROL).search(value)
    return None if found is None else found.group()


@dataclass(frozen=True)
class _Input:
    """Where a string can enter: a literal in the document, or a variable used somewhere."""

    names: tuple[str, ...]
    type: GraphQLInputType | None
    literal: str | None = None
    variable: str | None = None


class _Collect(Visitor):
    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.names: list[str] = []
        self.inputs: list[_Input] = []
        self.defining = False

    def enter_argument(self, node, *_args) -> None:
        self.names.append(node.name.value)

    def leave_argument(self, *_args) -> None:
        self.names.pop()

    def enter_object_field(self, node, *_args) -> None:
        self.names.append(node.name.value)

    def leave_object_field(self, *_args) -> None:
        self.names.pop()

    def enter_variable_definition(self, node, *_args) -> None:
        self.names.append(node.variable.name.value)
        self.defining = True

    def leave_variable_definition(self, *_args) -> None:
        self.names.pop()
        self.defining = False

    def enter_string_value(self, node: StringValueNode, *_args) -> None:
        self.inputs.append(_Input(tuple(self.names), None, literal=node.value))

    def enter_variable(self, node: VariableNode, *_args) -> None:
        if not self.defining and self.names and self.type_info.get_input_type() is not None:
            self.inputs.append(
                _Input(tuple(self.names), self.type_info.get_input_type(), variable=node.name.value)
            )


def _strings(value: Any, type_: GraphQLInputType | None, names: tuple[str, ...]) -> Iterator:
    """(names, string) for every string in a variable's value, as its type lays it out."""
    nullable = get_nullable_type(type_) if type_ is not None else None
    if isinstance(value, str):
        yield names, value
    elif isinstance(value, list):
        item_type = nullable.of_type if isinstance(nullable, GraphQLList) else nullable
        for item in value:
            yield from _strings(item, item_type, names)
    elif isinstance(value, dict):
        fields = nullable.fields if isinstance(nullable, GraphQLInputObjectType) else {}
        for key, item in value.items():
            field = fields.get(key)
            yield from _strings(item, field.type if field else None, (*names, str(key)))


_documents: OrderedDict[int, tuple[DocumentNode, list[_Input]]] = OrderedDict()


def _inputs(schema: GraphQLSchema, document: DocumentNode) -> list[_Input]:
    """Where strings enter this document (worked out once per parsed document)."""
    cached = _documents.get(id(document))
    if cached is not None and cached[0] is document:
        return cached[1]
    type_info = TypeInfo(schema)
    collector = _Collect(type_info)
    visit(document, TypeInfoVisitor(type_info, collector))
    _documents[id(document)] = (document, collector.inputs)
    while len(_documents) > _DOCUMENTS_KEPT:
        _documents.popitem(last=False)
    return collector.inputs


def check_inputs(schema: GraphQLSchema, document: DocumentNode, variables: dict | None) -> None:
    """Raise a coded GraphQLError for the first string that holds a forbidden character."""
    variables = variables or {}
    for entry in _inputs(schema, document):
        if entry.literal is not None:
            found = [(entry.names, entry.literal)]
        else:
            found = _strings(variables.get(entry.variable), entry.type, entry.names)
        for names, value in found:
            character = bad_character(names[-1], value)
            if character is not None:
                # A GraphQLError with its code: raised before execution, it skips the
                # extension that gives domain errors theirs.
                raise GraphQLError(
                    f"{'.'.join(names)} contains a control character "
                    f"(U+{ord(character):04X}), which it may not hold",
                    extensions={"code": "BAD_USER_INPUT", "field": names[-1]},
                )
