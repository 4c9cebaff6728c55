"""Reading the inventory: lists with filters, sorting and keyset pages; the tree in batches (a
fixed number of queries however big it is); and one search across every kind."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_

from db import assets as store
from db.assets import Container, Datacenter, Environment, Gpu, GpuHold, Server, Service
from db.base import counted, page
from db.engine import Database
from db.identity import get_user_by_username
from domain.assets.records import KINDS
from domain.checks import invalid
from domain.errors import BadUserInput
from domain.pagination import Page, decode_position, encode_position, page_size
from domain.people import UserRef

MAX_SEARCH_RESULTS = 100


class Sort(enum.Enum):
    NAME = "NAME"
    NAME_DESC = "NAME_DESC"
    NEWEST = "NEWEST"
    OLDEST = "OLDEST"


@dataclass(frozen=True)
class GpuView:
    """A GPU with who holds it (if anyone)."""

    gpu: Gpu
    hold: GpuHold | None
    holder: UserRef | None


MODELS = {
    "datacenter": Datacenter,
    "environment": Environment,
    "server": Server,
    "container": Container,
    "service": Service,
    "gpu": Gpu,
}


def _ordered(model, query, sort: Sort, after: str | None, kind: str):
    """`query` in `sort` order after the cursor; the sort column and how to read a cursor."""
    by_name = sort in (Sort.NAME, Sort.NAME_DESC)
    column = (model.serial if model is Gpu else model.name) if by_name else model.created_at
    descending = sort in (Sort.NAME_DESC, Sort.NEWEST)
    position = decode_position(f"{kind}:{sort.value}", after)
    if position is not None:
        value, key = position
        if not by_name:
            try:
                value = datetime.fromisoformat(str(value))
            except ValueError:
                raise BadUserInput("after is not a cursor from this list", field="after") from None
        if descending:
            query = query.where(or_(column < value, and_(column == value, model.id < key)))
        else:
            query = query.where(or_(column > value, and_(column == value, model.id > key)))
    order = (column.desc(), model.id.desc()) if descending else (column.asc(), model.id.asc())
    return query.order_by(*order), column


def _cursor_value(row, column) -> str:
    value = getattr(row, column.key)
    return value.isoformat() if isinstance(value, datetime) else value


class AssetReads:
    db: Database

    async def datacenters(self) -> list[Datacenter]:
        async with self.db.read() as session:
            return await store.every(session, Datacenter)

    async def environments(self) -> list[Environment]:
        async with self.db.read() as session:
            return await store.every(session, Environment)

    async def get(self, kind: str, row_id: int):
        async with self.db.read() as session:
            return await store.get(session, MODELS[kind], row_id)

    async def gpu(self, gpu_id: int) -> GpuView | None:
        views = await self.gpus_by_id([gpu_id])
        return views.get(gpu_id)

    # -- lists -------------------------------------------------------------------------------

    async def _page(self, kind: str, query, sort: Sort, first, after) -> tuple[list, Page]:
        limit = page_size(first)
        model = MODELS[kind]
        async with self.db.read() as session:
            total = await counted(session, query)
            ordered, column = _ordered(model, query, sort, after, kind)
            rows = await page(session, ordered, limit + 1)
        shown = rows[:limit]
        cursors = [
            encode_position(f"{kind}:{sort.value}", _cursor_value(row, column), row.id)
            for row in shown
        ]
        return shown, Page(items=shown, cursors=cursors, total=total, has_next=len(rows) > limit)

    async def _environment_filter(self, name: str | None) -> int | None:
        """The id to filter by (-1, matching nothing, for an unknown name)."""
        if name is None:
            return None
        async with self.db.read() as session:
            found = await store.by_name(session, Environment, name)
        return -1 if found is None else found.id

    async def servers(
        self,
        *,
        status: str | None = None,
        datacenter_id: int | None = None,
        environment: str | None = None,
        tag: str | None = None,
        text: str | None = None,
        sort: Sort = Sort.NAME,
        first: int | None = None,
        after: str | None = None,
    ) -> Page[Server]:
        query = store.server_query(
            status=status,
            datacenter_id=datacenter_id,
            environment_id=await self._environment_filter(environment),
            tag=tag.strip().lower() if tag else None,
            text=_search_text(text),
        )
        return (await self._page("server", query, sort, first, after))[1]

    async def containers(
        self,
        *,
        status: str | None = None,
        server_id: int | None = None,
        environment: str | None = None,
        text: str | None = None,
        sort: Sort = Sort.NAME,
        first: int | None = None,
        after: str | None = None,
    ) -> Page[Container]:
        query = store.container_query(
            status=status,
            server_id=server_id,
            environment_id=await self._environment_filter(environment),
            text=_search_text(text),
        )
        return (await self._page("container", query, sort, first, after))[1]

    async def services(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        container_id: int | None = None,
        text: str | None = None,
        sort: Sort = Sort.NAME,
        first: int | None = None,
        after: str | None = None,
    ) -> Page[Service]:
        query = store.service_query(
            status=status, kind=kind, container_id=container_id, text=_search_text(text)
        )
        return (await self._page("service", query, sort, first, after))[1]

    async def gpus(
        self,
        *,
        free: bool | None = None,
        holder: str | None = None,
        server_id: int | None = None,
        datacenter_id: int | None = None,
        text: str | None = None,
        sort: Sort = Sort.NAME,
        first: int | None = None,
        after: str | None = None,
    ) -> Page[GpuView]:
        holder_id = None
        if holder is not None:
            async with self.db.read() as session:
                user = await get_user_by_username(session, holder)
            holder_id = -1 if user is None else user.id
        query = store.gpu_query(
            free=free,
            holder_id=holder_id,
            server_id=server_id,
            datacenter_id=datacenter_id,
            text=_search_text(text),
        )
        rows, page = await self._page("gpu", query, sort, first, after)
        views = await self.gpus_by_id([row.id for row in rows], rows)
        return Page(
            items=[views[row.id] for row in rows],
            cursors=page.cursors,
            total=page.total,
            has_next=page.has_next,
        )

    # -- the tree, in batches (one query per level, for DataLoaders) --------------------------

    async def by_ids(self, kind: str, ids: list[int]) -> dict[int, Any]:
        async with self.db.read() as session:
            return await store.rows_by_id(session, MODELS[kind], set(ids))

    async def children(self, kind: str, parent: str, parent_ids: list[int]) -> dict[int, list]:
        """Rows of `kind` under each parent id (`parent`: the foreign key column's name)."""
        model = MODELS[kind]
        column = getattr(model, parent)
        async with self.db.read() as session:
            rows = await store.children(session, model, column, set(parent_ids))
        grouped: dict[int, list] = {parent_id: [] for parent_id in parent_ids}
        for row in rows:
            grouped[getattr(row, parent)].append(row)
        return grouped

    async def gpus_of_servers(self, server_ids: list[int]) -> dict[int, list[GpuView]]:
        async with self.db.read() as session:
            gpus = await store.children(session, Gpu, Gpu.server_id, set(server_ids))
            holds = await store.holds_of(session, {gpu.id for gpu in gpus})
        grouped: dict[int, list[GpuView]] = {server_id: [] for server_id in server_ids}
        for gpu in gpus:
            grouped[gpu.server_id].append(_view(gpu, holds.get(gpu.id)))
        return grouped

    async def gpus_by_id(self, ids: list[int], rows: list[Gpu] | None = None) -> dict:
        async with self.db.read() as session:
            if rows is None:
                rows = list((await store.rows_by_id(session, Gpu, set(ids))).values())
            holds = await store.holds_of(session, {gpu.id for gpu in rows})
        return {gpu.id: _view(gpu, holds.get(gpu.id)) for gpu in rows}

    async def tags(self, server_ids: list[int]) -> dict[int, list[str]]:
        async with self.db.read() as session:
            return await store.tags_of(session, set(server_ids))

    async def ports(self, container_ids: list[int]) -> dict[int, list]:
        async with self.db.read() as session:
            return await store.ports_of(session, set(container_ids))

    # -- search ------------------------------------------------------------------------------

    async def search(self, text: str, first: int | None = None) -> list[tuple[str, Any]]:
        """(kind, row) across every kind, best matches first: the whole name (or serial)
        before a name that starts with the text, before the text anywhere."""
        wanted = _search_text(text)
        if not wanted:
            raise invalid("text", "give some text to search for")
        limit = 20 if first is None else first
        if not 0 <= limit <= MAX_SEARCH_RESULTS:
            raise BadUserInput(f"first must be between 0 and {MAX_SEARCH_RESULTS}", field="first")
        found: list[tuple[int, int, str, str, Any]] = []
        async with self.db.read() as session:
            for order, (kind, model) in enumerate(MODELS.items()):
                for row in await store.search(session, model, wanted, limit):
                    found.append((_rank(kind, row, wanted), order, _title(row), kind, row))
        found.sort(key=lambda hit: (-hit[0], hit[1], hit[2].lower(), hit[4].id))
        rows = [(kind, row) for *_, kind, row in found[:limit]]
        views = await self.gpus_by_id([row.id for kind, row in rows if kind == "gpu"])
        return [(kind, views[row.id] if kind == "gpu" else row) for kind, row in rows]


def _search_text(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    if len(text) > 200:
        raise invalid("search", "at most 200 characters")
    return text or None


def _title(row) -> str:
    return row.serial if isinstance(row, Gpu) else row.name


def _rank(kind: str, row, text: str) -> int:
    wanted = text.lower()
    titles = [_title(row).lower()]
    if isinstance(row, Gpu):
        titles.append(row.model.lower())
    if isinstance(row, Server):
        addresses = (row.hostname, row.management_ip, row.public_ip)
        titles += [value.lower() for value in addresses if value]
    if any(title == wanted for title in titles):
        return 3
    if any(title.startswith(wanted) for title in titles):
        return 2
    return 1


def _view(gpu: Gpu, held) -> GpuView:
    if held is None:
        return GpuView(gpu, None, None)
    hold, user = held
    return GpuView(gpu, hold, UserRef.of(user))


__all__ = ["KINDS", "AssetReads", "GpuView", "Sort"]
