"""The executor: graphql-core's, with plain leaf fields resolved without its per-field machinery.

A list of a hundred locks is a thousand fields, and almost all of them are plain attributes of
a dataclass that end in a scalar (`path`, `acquiredAt`, `username`). graphql-core builds a
resolve-info object, looks at arguments, calls Strawberry's wrapper, checks for awaitables and
dispatches on the type for every one of them; for these fields that is most of a list's cost.
Here such a field is read and serialised directly. Anything unusual — arguments, a null where
the type forbids one, a value the scalar will not serialise — goes the normal way, so errors
are graphql-core's own.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

_PLAIN: dict[int, dict[tuple[str, str], tuple[Any, Any, bool]]] = {}
"""Per schema: (type name, field name) → (resolve, coerce, non-null) of plain leaf fields."""


def plain_leaves(schema: GraphQLSchema) -> dict[tuple[str, str], tuple[Any, Any, bool]]:
    found = _PLAIN.get(id(schema))
    if found is not None:
        return found
    found = {}
    for type_ in schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
            continue
        for name, field in type_.fields.items():
            if field.args or not getattr(field.resolve, "_is_default", False):
                continue
            non_null = isinstance(field.type, GraphQLNonNull)
            leaf = field.type.of_type if non_null else field.type
            if isinstance(leaf, GraphQLScalarType | GraphQLEnumType):
                found[(type_.name, name)] = (field.resolve, leaf.coerce_output_value, non_null)
    _PLAIN[id(schema)] = found
    return found


class Executor(StrawberryGraphQLCoreExecutionContext):
    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list,
        path,
        position_context,
    ):
        node = field_details_list[0].node
        plain = plain_leaves(self.schema).get((parent_type.name, node.name.value))
        if plain is not None and not node.arguments and len(field_details_list) == 1:
            resolve, coerce, non_null = plain
            try:
                value = resolve(source, None)
                if value is None:
                    if not non_null:
                        return None
                else:
                    coerced = coerce(value)
                    if coerced is not None:
                        return coerced
            except Exception:  # noqa: S110 - the normal path below reports it properly
                pass
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )
