"""Everything one person holds, across every area, in the GraphQL schema."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from domain.holds import Holding
from graph.context import Context


@strawberry.type(description="One thing someone holds: a lock, a GPU, a part claim, a spot …")
class Hold:
    area: str = strawberry.field(description="locks, gpus, parts, spots …")
    id: strawberry.ID = strawberry.field(description="The hold's id within its area.")
    what: str = strawberry.field(description="What is held, e.g. default:Content/A.uasset.")
    since: datetime
    until: datetime | None = strawberry.field(description="When it ends, where that applies.")

    @classmethod
    def of(cls, holding: Holding) -> Hold:
        return cls(
            area=holding.area,
            id=strawberry.ID(str(holding.id)),
            what=holding.what,
            since=holding.since,
            until=holding.until,
        )


@strawberry.type
class HoldingQuery:
    @strawberry.field(
        description="Everything one person holds in every area, newest first: yours, or "
        "(admins) anyone's."
    )
    async def held_by(
        self, info: Info[Context, None], username: str | None = None, first: int | None = None
    ) -> list[Hold]:
        actor = await info.context.require_viewer()
        holdings = await info.context.services.holds.held_by(actor, username, first)
        return [Hold.of(holding) for holding in holdings]
