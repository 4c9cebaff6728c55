"""The executor: graphql-core's, with plain selections completed without its per-field machinery.

A list of a hundred locks is a thousand fields, nearly all of them plain attributes of
dataclasses that end in scalars (`path`, `acquiredAt`, `owner { username }`). For each of
them graphql-core builds a resolve-info object, looks at arguments, calls Strawberry's wrapper,
checks for awaitables, checks the object's type and dispatches on the field's type; for lists
that is most of a request's cost.

So when an object's selection is plain all the way down — fields without arguments or
resolvers of their own, ending in scalars, enums, plain objects or lists of them, no
directives, no deferred parts — it is compiled once per request into a function that reads
and serialises it directly. Anything unusual on the way (a null where the type forbids one, a
value its scalar will not serialise) abandons the shortcut for that object, and graphql-core
completes it, with its own errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

Plan = Callable[[Any], dict[str, Any]]


class _Unplain(Exception):
    """Raised by a compiled plan that meets something graphql-core must handle."""


def _is_plain_field(field) -> bool:
    return not field.args and getattr(field.resolve, "_is_default", False)


def _leaf(coerce: Callable[[Any], Any], non_null: bool) -> Callable[[Any], Any]:
    def complete(value: Any) -> Any:
        if value is None:
            if non_null:
                raise _Unplain
            return None
        coerced = coerce(value)
        if coerced is None:
            raise _Unplain
        return coerced

    return complete


def _nullable(inner: Callable[[Any], Any], non_null: bool) -> Callable[[Any], Any]:
    def complete(value: Any) -> Any:
        if value is None:
            if non_null:
                raise _Unplain
            return None
        return inner(value)

    return complete


class Executor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor with compiled plans for plain selections (per request)."""

    def _plan(self, return_type: GraphQLObjectType, field_details_list) -> Plan | None:
        plans = self.__dict__.setdefault("_holdfast_plans", {})
        key = (return_type.name, id(field_details_list))
        if key not in plans:
            plans[key] = None  # while compiling: a cycle is not plain
            plans[key] = (self._compile(return_type, field_details_list), field_details_list)
        entry = plans[key]
        return entry[0] if entry else None

    def _compile(self, return_type: GraphQLObjectType, field_details_list) -> Plan | None:
        if any(details.node.directives for details in field_details_list):
            return None
        grouped, deferred, _ = self.collect_subfields(return_type, field_details_list)
        if deferred:
            return None
        steps: list[tuple[str, Callable, Callable]] = []
        for response_key, details in grouped.items():
            node = details[0].node
            if node.arguments or any(detail.node.directives for detail in details):
                return None
            name = node.name.value
            if name == "__typename":
                steps.append((response_key, lambda _source, name=return_type.name: name, None))
                continue
            field = return_type.fields.get(name)
            if field is None or not _is_plain_field(field):
                return None
            complete = self._completer(field.type, details)
            if complete is None:
                return None
            steps.append((response_key, field.resolve, complete))

        def run(source: Any) -> dict[str, Any]:
            out = {}
            for response_key, resolve, complete in steps:
                if complete is None:
                    out[response_key] = resolve(source)
                else:
                    out[response_key] = complete(resolve(source, None))
            return out

        return run

    def _completer(self, type_, details) -> Callable[[Any], Any] | None:
        non_null = isinstance(type_, GraphQLNonNull)
        inner_type = type_.of_type if non_null else type_
        if isinstance(inner_type, GraphQLScalarType | GraphQLEnumType):
            return _leaf(inner_type.coerce_output_value, non_null)
        if isinstance(inner_type, GraphQLObjectType):
            plan = self._plan(inner_type, details)
            return None if plan is None else _nullable(plan, non_null)
        if isinstance(inner_type, GraphQLList):
            item = self._completer(inner_type.of_type, details)
            if item is None:
                return None

            def complete_list(values: Any) -> list:
                if isinstance(values, str | bytes | dict) or not hasattr(values, "__iter__"):
                    raise _Unplain
                return [item(value) for value in values]

            return _nullable(complete_list, non_null)
        return None

    def complete_object_value(
        self, return_type, field_details_list, info, path, result, position_context
    ):
        plan = self._plan(return_type, field_details_list)
        if plan is not None:
            try:
                return plan(result)
            except _Unplain:
                pass
            except Exception:  # noqa: S110 - graphql-core completes it and reports the error
                pass
        return super().complete_object_value(
            return_type, field_details_list, info, path, result, position_context
        )
