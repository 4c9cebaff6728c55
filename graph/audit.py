"""The audit log in the GraphQL schema: who changed what, from where."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from domain import audit
from domain.pagination import Page
from graph.context import Context
from graph.identity import User
from graph.pagination import PageInfo
from graph.scalars import JSON


@strawberry.type(
    description="One recorded change: who changed what, from where, and each field before "
    "and after."
)
class AuditEntry:
    id: strawberry.ID
    at: datetime
    actor: User | None
    action: str
    resource_type: str
    resource_id: str
    changes: JSON | None = strawberry.field(
        description='{"field": [before, after], ...}; secrets never appear.'
    )
    snapshot: JSON | None = strawberry.field(description="The whole resource as it was, on delete.")
    client_address: str | None
    request_id: str | None

    @classmethod
    def of(cls, entry: audit.Entry) -> AuditEntry:
        row = entry.row
        return cls(
            id=strawberry.ID(str(row.id)),
            at=row.at,
            actor=None if entry.actor is None else User.of_ref(entry.actor),
            action=row.action,
            resource_type=row.resource_type,
            resource_id=row.resource_id,
            changes=entry.changes,
            snapshot=entry.snapshot,
            client_address=row.client_address,
            request_id=row.request_id,
        )


@strawberry.type
class AuditEntryEdge:
    node: AuditEntry
    cursor: str


@strawberry.type
class AuditEntryConnection:
    edges: list[AuditEntryEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def of(cls, page: Page[audit.Entry]) -> AuditEntryConnection:
        return cls(
            edges=[
                AuditEntryEdge(node=AuditEntry.of(entry), cursor=cursor)
                for entry, cursor in zip(page.items, page.cursors, strict=True)
            ],
            page_info=PageInfo.of(page),
            total_count=page.total,
        )


@strawberry.type
class AuditQuery:
    @strawberry.field(description="Admins: every change; others: changes they made.")
    async def audit_log(
        self,
        info: Info[Context, None],
        resource_type: str | None = None,
        resource_id: str | None = None,
        actor: str | None = None,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> AuditEntryConnection:
        viewer = await info.context.require_viewer()
        page = await info.context.services.audit.entries(
            viewer,
            resource_type=resource_type,
            resource_id=resource_id,
            actor=actor,
            since=from_,
            until=to,
            first=first,
            after=after,
        )
        return AuditEntryConnection.of(page)
