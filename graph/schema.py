"""The one Strawberry schema, assembled from each area's query and mutation types."""

from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from functools import lru_cache

import strawberry
from graphql import GraphQLError, parse
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from graph.errors import ErrorCodes, log_unexpected
from graph.identity import IdentityMutation, IdentityQuery
from graph.inputs import InputChecks
from graph.jobs import JobQuery
from graph.live import Live
from graph.locks import LockMutation, LockQuery, LockSubscription
from graph.notify import WatchMutation, WatchQuery
from graph.projects import ProjectMutation, ProjectQuery
from graph.scalars import SCALARS
from graph.settings import SettingsMutation, SettingsQuery
from graph.shared_events import SharedEventExecutionContext

DOCUMENT_CACHE_SIZE = 1024


_parse_cached = lru_cache(maxsize=DOCUMENT_CACHE_SIZE)(parse)


class DocumentCache(SchemaExtension):
    """Strawberry's ParserCache, but a syntax error is left to Strawberry's own parse.

    ParserCache raises from its hook, which skips the error-shaping extension; documents
    that do not parse are rare, so parsing them twice costs nothing.
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        with suppress(GraphQLError):
            context.graphql_document = _parse_cached(context.query, **context.parse_options)
        yield


@strawberry.type
class Query(IdentityQuery, ProjectQuery, LockQuery, JobQuery, WatchQuery, SettingsQuery):
    pass


@strawberry.type
class Mutation(IdentityMutation, ProjectMutation, LockMutation, WatchMutation, SettingsMutation):
    pass


@strawberry.type
class Subscription(LockSubscription):
    pass


@dataclass(frozen=True)
class Limits:
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 2000
    introspection: bool = True


class HoldfastSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        context = execution_context.context if execution_context else None
        log_unexpected(errors, getattr(context, "request_id", None))


def build_schema(limits: Limits = Limits()) -> strawberry.Schema:
    # The depth and alias limiters make a new rule class per instance, and the validation
    # cache is keyed by the rules: built per request they made every validation a miss. Their
    # rules are stateless classes, so they are made once per schema.
    limit_rules = [
        *QueryDepthLimiter(max_depth=limits.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
    ]
    extensions = [
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        DocumentCache,
        lambda: AddValidationRules(limit_rules),
        lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
        InputChecks,
        ErrorCodes,
    ]
    if not limits.introspection:
        extensions.append(DisableIntrospection)
    built = HoldfastSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(scalar_map=SCALARS),
        execution_context_class=SharedEventExecutionContext,
    )
    built.live = Live(built, limit_rules, limits.max_tokens, limits.introspection)
    return built


schema = build_schema()
