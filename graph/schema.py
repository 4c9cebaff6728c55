"""The one Strawberry schema, assembled from each area's query and mutation types."""

from dataclasses import dataclass

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from graph.assets import AssetMutation, AssetQuery, AssetSubscription
from graph.assets.workbook import AssetWorkbookMutation
from graph.audit import AuditQuery
from graph.boundary import Boundary, limit_rules
from graph.errors import log_unexpected
from graph.holdings import HoldingQuery
from graph.identity import IdentityMutation, IdentityQuery
from graph.jobs import JobQuery
from graph.live import Live
from graph.locks import LockMutation, LockQuery, LockSubscription
from graph.notify import WatchMutation, WatchQuery
from graph.parking import ParkingMutation, ParkingQuery, ParkingSubscription
from graph.parts import PartMutation, PartQuery, PartSubscription
from graph.parts.files import PartFileMutation, PartFileQuery
from graph.projects import ProjectMutation, ProjectQuery
from graph.scalars import SCALARS
from graph.settings import SettingsMutation, SettingsQuery
from graph.shared_events import SharedEventExecutionContext
from graph.venues import VenueMutation, VenueQuery


@strawberry.type
class Query(
    IdentityQuery,
    ProjectQuery,
    LockQuery,
    AssetQuery,
    PartQuery,
    HoldingQuery,
    PartFileQuery,
    VenueQuery,
    ParkingQuery,
    JobQuery,
    WatchQuery,
    SettingsQuery,
    AuditQuery,
):
    pass


@strawberry.type
class Mutation(
    IdentityMutation,
    ProjectMutation,
    LockMutation,
    AssetMutation,
    PartMutation,
    PartFileMutation,
    VenueMutation,
    ParkingMutation,
    AssetWorkbookMutation,
    WatchMutation,
    SettingsMutation,
):
    pass


@strawberry.type
class Subscription(LockSubscription, AssetSubscription, PartSubscription, ParkingSubscription):
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
    rules = limit_rules(limits.max_depth, limits.max_aliases, limits.introspection)
    built = HoldfastSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[lambda: Boundary(max_tokens=limits.max_tokens, rules=rules)],
        config=StrawberryConfig(scalar_map=SCALARS),
        execution_context_class=SharedEventExecutionContext,
    )
    built.live = Live(built, list(rules), limits.max_tokens)
    return built


schema = build_schema()
