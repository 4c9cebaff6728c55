"""The whole IT inventory in bulk, for the workbook export and import: a few statements per
table, never one per row."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.assets import (
    Container,
    Datacenter,
    Environment,
    Gpu,
    PortMapping,
    Server,
    ServerTag,
    Service,
)

MODELS = (Datacenter, Environment, Server, Container, Service, Gpu)
CHUNK = 1000
"""Rows per statement where a list of ids is bound (SQLite and asyncpg limit parameters)."""


def _chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def rows(session: AsyncSession, model) -> list[dict[str, Any]]:
    """Every row of `model`'s table as a dict of its columns."""
    result = await session.execute(select(model.__table__).order_by(model.__table__.c.id))
    return [dict(row) for row in result.mappings()]


async def tags(session: AsyncSession) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    query = select(ServerTag.server_id, ServerTag.tag).order_by(ServerTag.tag)
    for server_id, tag in (await session.execute(query)).all():
        found.setdefault(server_id, []).append(tag)
    return found


async def ports(session: AsyncSession) -> dict[int, list[dict[str, Any]]]:
    """Each container's port mappings, in their order."""
    found: dict[int, list[dict[str, Any]]] = {}
    table = PortMapping.__table__
    query = select(
        table.c.container_id, table.c.host_port, table.c.container_port, table.c.protocol
    ).order_by(table.c.container_id, table.c.position, table.c.id)
    for container_id, host_port, container_port, protocol in (await session.execute(query)).all():
        found.setdefault(container_id, []).append(
            {"host_port": host_port, "container_port": container_port, "protocol": protocol}
        )
    return found


async def insert_rows(
    session: AsyncSession, model, values: list[dict[str, Any]], now: datetime
) -> None:
    """New rows (version 1); their ids are read back by natural key afterwards."""
    if values:
        stamped = [{**row, "version": 1, "created_at": now, "updated_at": now} for row in values]
        await session.execute(insert(model.__table__), stamped)


async def update_rows(
    session: AsyncSession, model, values: list[dict[str, Any]], now: datetime
) -> None:
    """Set these columns of rows by `id`, each row's version one up (like the API's
    writes). Every dict has the same keys."""
    if not values:
        return
    table = model.__table__
    columns = [name for name in values[0] if name != "id"]
    statement = (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values(
            {
                **{name: bindparam(f"new_{name}") for name in columns},
                "version": table.c.version + 1,
                "updated_at": now,
            }
        )
    )
    await session.execute(
        statement,
        [{"row_id": row["id"], **{f"new_{name}": row[name] for name in columns}} for row in values],
    )


async def replace_tags(
    session: AsyncSession, server_ids: list[int], tags_by_server: dict[int, list[str]]
) -> None:
    for chunk in _chunks(server_ids):
        await session.execute(delete(ServerTag).where(ServerTag.server_id.in_(chunk)))
    values = [
        {"server_id": server_id, "tag": tag}
        for server_id in server_ids
        for tag in tags_by_server.get(server_id, ())
    ]
    if values:
        await session.execute(insert(ServerTag.__table__), values)


async def replace_ports(
    session: AsyncSession,
    containers: list[tuple[int, int]],
    ports_by_container: dict[int, list[dict[str, Any]]],
) -> None:
    """Each (container id, server id)'s ports become the ones given, all old ones removed
    before any new one is written (a port may move between two of them)."""
    ids = [container_id for container_id, _ in containers]
    for chunk in _chunks(ids):
        await session.execute(delete(PortMapping).where(PortMapping.container_id.in_(chunk)))
    values = [
        {**mapping, "container_id": container_id, "server_id": server_id, "position": position}
        for container_id, server_id in containers
        for position, mapping in enumerate(ports_by_container.get(container_id, ()))
    ]
    if values:
        await session.execute(insert(PortMapping.__table__), values)


async def ids_by_key(session: AsyncSession, model, *columns: str) -> dict[Any, int]:
    """Every row's id by the value of `columns` (a tuple when more than one)."""
    table = model.__table__
    query = select(table.c.id, *(table.c[name] for name in columns))
    found = {}
    for row_id, *key in (await session.execute(query)).all():
        found[key[0] if len(key) == 1 else tuple(key)] = row_id
    return found
