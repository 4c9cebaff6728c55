"""The one Strawberry schema, assembled from each area's query and mutation types."""

from dataclasses import dataclass

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.types import ExecutionContext

from graph.errors import ErrorCodes, log_unexpected
from graph.identity import IdentityMutation, IdentityQuery

DOCUMENT_CACHE_SIZE = 1024


@strawberry.type
class Query(IdentityQuery):
    pass


@strawberry.type
class Mutation(IdentityMutation):
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
    extensions = [
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        lambda: ParserCache(maxsize=DOCUMENT_CACHE_SIZE),
        lambda: QueryDepthLimiter(max_depth=limits.max_depth),
        lambda: MaxAliasesLimiter(max_alias_count=limits.max_aliases),
        lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
        ErrorCodes,
    ]
    if not limits.introspection:
        extensions.append(DisableIntrospection)
    return HoldfastSchema(query=Query, mutation=Mutation, extensions=extensions)


schema = build_schema()
