"""Execute a subscription's selection once per event, not once per subscriber.

Strawberry runs the selection of every subscription for every subscriber on every event; with a
thousand subscribers that dominates delivery time. A payload made by `shared_payload` is the
same object for every subscriber of this process, and its result is computed once per distinct
document and variables, then reused. This is only sound because nothing under a lock event
depends on who asks: keep it that way (a user named in an event carries no email).
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from graphql import OperationType

from graph.execution import Executor

S = TypeVar("S")
P = TypeVar("P")

_payloads: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
RESULTS = "_shared_results"


def shared_payload(source: S, build: Callable[[S], P]) -> P:
    """The payload for `source`, built once per process and marked as shareable."""
    payload = _payloads.get(source)
    if payload is None:
        payload = build(source)
        setattr(payload, RESULTS, {})
        _payloads[source] = payload
    return payload


async def _shared(future: asyncio.Future) -> Any:
    return await asyncio.shield(future)


class SharedEventExecutionContext(Executor):
    def execute_operation(self, serially: bool | None = None):
        cached = getattr(self.root_value, RESULTS, None)
        if cached is None or self.operation.operation != OperationType.SUBSCRIPTION:
            return super().execute_operation(serially)
        key = (
            id(self.operation),
            json.dumps(self.variable_values.coerced, sort_keys=True, default=str),
        )
        if key not in cached:
            result = super().execute_operation(serially)
            cached[key] = asyncio.ensure_future(result) if self.is_awaitable(result) else result
        value = cached[key]
        return _shared(value) if isinstance(value, asyncio.Future) else value
