"""Subscriptions at scale: each event executed and encoded once, its bytes sent to everyone.

Strawberry runs a subscription's whole pipeline for every subscriber on every event (build an
executor, run the selection, run every extension's hooks, shape the result, encode it); with
thousands of subscribers that is most of the delivery time. For graphql-transport-ws the
websocket handler (server/graphql.py) asks `Live.plan` whether it can serve an operation here:
a subscription that parses, validates and fits the limits like any other. If so:

- the source stream still starts per subscriber, through graphql-core, so the resolver does
  what it does for anyone: checks access, replays from `since`, takes its own place in the
  feed, ends when the credential does;
- each event's frame — the selection executed against the event, its errors shaped, the JSON
  encoded — is made once per event for each distinct document and variables (but the root
  field's arguments, which only choose the stream), and every other subscriber sends the same
  text with its own operation id.

Sound only because nothing under a live event depends on who asks (see shared_events.py).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    parse,
    specified_rules,
    validate,
    visit,
)
from graphql import Visitor as AstVisitor
from graphql.execution import create_source_event_stream, execute_subscription_event

from graph.errors import log_unexpected, shaped
from graph.inputs import check_inputs
from graph.shared_events import RESULTS, SharedEventExecutionContext

PLANS_KEPT = 256


@dataclass(frozen=True)
class Plan:
    """A subscription document this module serves, checked once."""

    document: DocumentNode
    operation_name: str | None
    selection_variables: tuple[str, ...]
    """The variables used under the root field: only they change what an event looks like."""
    key: tuple


class _Variables(AstVisitor):
    """Names of the variables used inside the root field's selection (not its arguments)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.depth = 0

    def enter_selection_set(self, *_args) -> None:
        self.depth += 1

    def leave_selection_set(self, *_args) -> None:
        self.depth -= 1

    def enter_variable(self, node: VariableNode, *_args) -> None:
        if self.depth >= 2:
            self.names.add(node.name.value)


class Live:
    def __init__(self, schema, limit_rules: list, max_tokens: int) -> None:
        self.schema = schema
        self.rules = [*specified_rules, *limit_rules]
        self.max_tokens = max_tokens
        self._plans: OrderedDict[tuple, Plan | None] = OrderedDict()

    def plan(self, query: Any, operation_name: Any) -> Plan | None:
        """The plan for this subscription, or None: let Strawberry serve it (it is not a
        subscription, does not parse or validate — Strawberry says why — or is malformed)."""
        if not isinstance(query, str) or not isinstance(operation_name, str | None):
            return None
        key = (query, operation_name)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        plan = self._make(query, operation_name, key)
        self._plans[key] = plan
        while len(self._plans) > PLANS_KEPT:
            self._plans.popitem(last=False)
        return plan

    def _make(self, query: str, operation_name: str | None, key: tuple) -> Plan | None:
        try:
            document = parse(query, max_tokens=self.max_tokens)
        except GraphQLError:
            return None
        operations = [
            definition
            for definition in document.definitions
            if isinstance(definition, OperationDefinitionNode)
            and (
                operation_name is None
                or (definition.name and definition.name.value == operation_name)
            )
        ]
        if len(operations) != 1 or operations[0].operation != OperationType.SUBSCRIPTION:
            return None
        if validate(self.schema._schema, document, self.rules):
            return None
        collector = _Variables()
        visit(operations[0], collector)
        return Plan(document, operation_name, tuple(sorted(collector.names)), key)

    async def start(self, plan: Plan, variables: dict | None, context) -> tuple[Any, Any]:
        """(executor, source stream) for one subscriber, or (None, errors) when it cannot
        start; errors raised as the source stream runs are the caller's to report."""
        check_inputs(self.schema._schema, plan.document, variables)
        executor = SharedEventExecutionContext.build(
            self.schema._schema,
            plan.document,
            context_value=context,
            raw_variable_values=variables or {},
            operation_name=plan.operation_name,
        )
        if isinstance(executor, list):
            return None, executor
        stream = create_source_event_stream(executor)
        if executor.is_awaitable(stream):
            stream = await stream
        if isinstance(stream, ExecutionResult):
            return None, stream.errors
        return executor, stream

    async def frame(self, plan: Plan, variables: dict | None, executor, payload: Any) -> str:
        """The `payload` JSON of this event's `next` message, made once per event for each
        distinct document and variables."""
        shared = getattr(payload, RESULTS, None)
        if shared is None:
            return await self._encode(executor, payload)
        values = variables or {}
        key = (
            "live",
            plan.key,
            orjson.dumps([values.get(name) for name in plan.selection_variables]),
        )
        made = shared.get(key)
        if made is None:
            made = shared[key] = asyncio.ensure_future(self._encode(executor, payload))
        return await asyncio.shield(made)

    async def _encode(self, executor, payload: Any) -> str:
        result = execute_subscription_event(executor.build_per_event_executor(payload))
        if executor.is_awaitable(result):
            result = await result
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            log_unexpected(result.errors, getattr(executor.context_value, "request_id", None))
            body["errors"] = [
                shaped(
                    error, "execute", getattr(executor.context_value, "request_id", None)
                ).formatted
                for error in result.errors
            ]
        return orjson.dumps(body).decode()

    @staticmethod
    def errors_payload(errors: list[GraphQLError], phase: str, request_id: str | None) -> list:
        log_unexpected(errors, request_id)
        return [shaped(error, phase, request_id).formatted for error in errors]
