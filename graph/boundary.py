"""Everything Holdfast does around an operation, as one Strawberry extension.

Each extension costs every request its own hook objects and calls (seven of them were a
quarter of a small request), so the limits, the parse and validation caches, the string
check, the read cache and the error codes run here, in one:

- parse: documents are parsed once (a document that does not parse is left to Strawberry's
  own parse, which reports it), with at most `max_tokens` tokens;
- validate: once per document, with the depth and alias limits (and without introspection
  when it is off);
- execute: strings checked (graph.inputs), results served from the read cache
  (graph.read_cache) when current;
- every error leaves with its code (graph.errors).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from functools import lru_cache

from graphql import GraphQLError, parse
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.schema.schema import validate_document

from graph import read_cache
from graph.errors import shaped
from graph.inputs import check_inputs

DOCUMENT_CACHE_SIZE = 1024

parsed = lru_cache(maxsize=DOCUMENT_CACHE_SIZE)(parse)
validated = lru_cache(maxsize=DOCUMENT_CACHE_SIZE)(validate_document)


def limit_rules(max_depth: int, max_aliases: int, introspection: bool) -> tuple:
    """The validation rules of the limits, made once per schema (a rule made per request
    would make every validation a cache miss)."""
    rules = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    ]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return tuple(rules)


class Boundary(SchemaExtension):
    def __init__(self, *, max_tokens: int, rules: tuple) -> None:
        super().__init__()
        self.max_tokens = max_tokens
        self.rules = rules
        self.phase = "parse"
        self.streamed = False

    def on_operation(self) -> Iterator[None]:
        self.execution_context.parse_options["max_tokens"] = self.max_tokens
        yield
        if not self.streamed:
            self._shape(self.execution_context.result)

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and isinstance(context.query, str):
            with suppress(GraphQLError):
                context.graphql_document = parsed(context.query, **context.parse_options)
        yield

    def on_validate(self) -> Iterator[None]:
        self.phase = "validate"
        context = self.execution_context
        rules = (*context.validation_rules, *self.rules)
        context.pre_execution_errors = validated(
            context.schema._schema, context.graphql_document, rules
        )
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        self.phase = "execute"
        context = self.execution_context
        check_inputs(context.schema._schema, context.graphql_document, context.variables)
        kept = await read_cache.lookup(context)
        yield
        read_cache.keep(kept, context.result)

    def on_stream_result(self, result: object) -> Iterator[None]:
        self.streamed = True
        self._shape(result)
        yield

    def _shape(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            request_id = getattr(self.execution_context.context, "request_id", None)
            result.errors = [shaped(error, self.phase, request_id) for error in errors]
