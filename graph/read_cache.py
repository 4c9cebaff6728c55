"""Query results kept by each process while what they show cannot have changed.

Who holds what changes at human pace and is read all day (every board, every editor's lock
cache, every `git lfs locks`). A root field that can say what its answer depends on registers
a *version* function (`versioned`): for a project's locks that is the project's stream seq,
read from the database on every request, and the moment the next lock expires. The whole
result of a query made only of such fields is kept under its document, variables, viewer and
versions, together with the generations of the caches of users and projects (a user renamed,
deactivated or a project changed moves them on), and served while it is current. Every request
still asks the database for the seq, so a read never lags a commit, on any replica.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from graphql import FieldNode, OperationDefinitionNode
from graphql.execution.values import get_argument_values

from domain.errors import DomainError

Version = tuple[tuple, float] | None
"""(what the answer depends on, until when it holds as a time.time()) — None: do not keep."""
VersionFunction = Callable[[Any, dict[str, Any]], Awaitable[Version]]

ENTRIES_KEPT = 512
_versions: dict[str, VersionFunction] = {}
_results: OrderedDict[tuple, tuple[Any, float]] = OrderedDict()


def versioned(field_name: str) -> Callable[[VersionFunction], VersionFunction]:
    """Register `function(context, arguments)` as what the Query field `field_name` depends on."""

    def register(function: VersionFunction) -> VersionFunction:
        _versions[field_name] = function
        return function

    return register


async def _key(context) -> tuple[tuple, float] | None:
    """The key of this operation's result and until when it holds, or None: not kept."""
    operation = _the_operation(context.graphql_document, context.operation_name)
    if operation is None or operation.operation.value != "query":
        return None
    roots = operation.selection_set.selections
    if not all(
        isinstance(root, FieldNode) and not root.directives and root.name.value in _versions
        for root in roots
    ):
        return None
    caches = getattr(context.context.services, "caches", ())
    if not caches or not all(cache.bus.healthy for cache in caches):
        return None
    try:
        viewer = await context.context.viewer()
    except DomainError:
        return None  # the resolvers say so, with the error's code
    if viewer is None:
        return None
    fields = context.schema._schema.query_type.fields
    versions, until = [], float("inf")
    for root in roots:
        try:
            field = fields[root.name.value]
            arguments = get_argument_values(field, root, context.variables or {})
        except Exception:
            return None
        version = await _versions[root.name.value](context.context, arguments)
        if version is None:
            return None
        versions.append(version[0])
        until = min(until, version[1])
    key = (
        context.query,
        context.operation_name,
        orjson.dumps(context.variables or {}, option=orjson.OPT_SORT_KEYS),
        viewer.id,
        tuple((cache.generation, cache.bus.epoch) for cache in caches),
        tuple(versions),
    )
    return key, until


async def lookup(context) -> tuple[tuple, float] | None:
    """Before execution: put a current kept result in `context.result` (execution is then
    skipped); returns what `keep` needs afterwards."""
    found = await _key(context)
    if found is not None:
        kept = _results.get(found[0])
        if kept is not None and time.time() < kept[1]:
            _results.move_to_end(found[0])
            context.result = kept[0]
            return None
    return found


def keep(found: tuple[tuple, float] | None, result) -> None:
    """After execution: keep a result without errors under the key `lookup` found."""
    if found is not None and result is not None and not result.errors:
        _results[found[0]] = (result, found[1])
        while len(_results) > ENTRIES_KEPT:
            _results.popitem(last=False)


def _the_operation(document, name: str | None) -> OperationDefinitionNode | None:
    if document is None:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == name), None)
