"""The workbook's sheets and columns, and the inventory as the workbook says it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db import asset_workbook as store
from db.assets import Container, Datacenter, Environment, Gpu, Server, Service
from domain.assets.records import format_ports
from domain.workbooks import Sheet, SheetSpec


@dataclass(frozen=True)
class Column:
    header: str
    field: str | None = None
    """The field of records.py whose check reads this cell (None: a reference, resolved
    here by name)."""
    cell: str = "text"
    """How a cell is read before the check: text, int or number."""
    required: bool = False
    """For references: the row needs one."""


@dataclass(frozen=True)
class SheetKind:
    sheet: str
    kind: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]

    @property
    def headers(self) -> tuple[str, ...]:
        return tuple(column.header for column in self.columns)


def _fields(*names: str, cells: dict[str, str] | None = None) -> tuple[Column, ...]:
    return tuple(Column(name, name, (cells or {}).get(name, "text")) for name in names)


DATACENTERS = SheetKind(
    "Datacenters", "datacenter", _fields("name", "location", "description"), ("name",)
)
ENVIRONMENTS = SheetKind("Environments", "environment", _fields("name", "color"), ("name",))
SERVERS = SheetKind(
    "Servers",
    "server",
    (
        *_fields(
            "name",
            "hostname",
            "management_ip",
            "public_ip",
            "cpu_cores",
            "memory_gb",
            "disk_gb",
            "os",
            "status",
            cells={"cpu_cores": "int", "memory_gb": "int", "disk_gb": "int"},
        ),
        Column("datacenter", required=True),
        *_fields("environment", "notes", "tags"),
    ),
    ("name",),
)
CONTAINERS = SheetKind(
    "Containers",
    "container",
    (
        Column("server", required=True),
        *_fields(
            "name",
            "image",
            "cpu_limit",
            "memory_limit_mb",
            "ports",
            "status",
            "environment",
            cells={"cpu_limit": "number", "memory_limit_mb": "int"},
        ),
    ),
    ("server", "name"),
)
SERVICES = SheetKind(
    "Services",
    "service",
    (
        Column("server", required=True),
        Column("container", required=True),
        *_fields("name", "kind", "port", "health_check_url", "status", cells={"port": "int"}),
    ),
    ("server", "container", "name"),
)
GPUS = SheetKind(
    "GPUs",
    "gpu",
    (*_fields("serial", "model", "memory_gb", cells={"memory_gb": "int"}), Column("server")),
    ("serial",),
)
SHEETS = (DATACENTERS, ENVIRONMENTS, SERVERS, CONTAINERS, SERVICES, GPUS)
SPECS = tuple(SheetSpec(sheet.sheet, sheet.headers) for sheet in SHEETS)


# -- the inventory as the workbook says it ----------------------------------------------------


@dataclass
class Stored:
    """The inventory as it is: each kind's rows as the workbook says them, by natural key,
    with the database rows behind them."""

    rows: dict[str, dict[Any, dict[str, Any]]]
    """kind → natural key → {header: value} (tags and ports as lists)."""
    records: dict[str, dict[Any, dict[str, Any]]]
    """kind → natural key → the row's columns."""
    tags: dict[int, list[str]]
    ports: dict[int, list[dict[str, Any]]]


async def load(session: AsyncSession) -> Stored:
    datacenters = await store.rows(session, Datacenter)
    environments = await store.rows(session, Environment)
    servers = await store.rows(session, Server)
    containers = await store.rows(session, Container)
    services = await store.rows(session, Service)
    gpus = await store.rows(session, Gpu)
    tags = await store.tags(session)
    ports = await store.ports(session)
    datacenter_name = {row["id"]: row["name"] for row in datacenters}
    environment_name = {row["id"]: row["name"] for row in environments}
    server_name = {row["id"]: row["name"] for row in servers}
    container_key = {row["id"]: (server_name[row["server_id"]], row["name"]) for row in containers}
    said: dict[str, dict[Any, dict[str, Any]]] = {sheet.kind: {} for sheet in SHEETS}
    records: dict[str, dict[Any, dict[str, Any]]] = {sheet.kind: {} for sheet in SHEETS}

    def keep(kind: str, key: Any, record: dict[str, Any], values: dict[str, Any]) -> None:
        said[kind][key], records[kind][key] = values, record

    for row in datacenters:
        keep("datacenter", row["name"], row, _pick(row, DATACENTERS))
    for row in environments:
        keep("environment", row["name"], row, _pick(row, ENVIRONMENTS))
    for row in servers:
        values = _pick(row, SERVERS)
        values["datacenter"] = datacenter_name[row["datacenter_id"]]
        values["environment"] = environment_name.get(row["environment_id"])
        values["tags"] = sorted(tags.get(row["id"], []))
        keep("server", row["name"], row, values)
    for row in containers:
        values = _pick(row, CONTAINERS)
        values["server"] = server_name[row["server_id"]]
        values["environment"] = environment_name.get(row["environment_id"])
        values["ports"] = ports.get(row["id"], [])
        keep("container", container_key[row["id"]], row, values)
    for row in services:
        server, container = container_key[row["container_id"]]
        values = {**_pick(row, SERVICES), "server": server, "container": container}
        keep("service", (server, container, row["name"]), row, values)
    for row in gpus:
        values = {**_pick(row, GPUS), "server": server_name.get(row["server_id"])}
        keep("gpu", row["serial"], row, values)
    return Stored(said, records, tags, ports)


def _pick(row: dict[str, Any], sheet: SheetKind) -> dict[str, Any]:
    return {column.header: row.get(column.header) for column in sheet.columns}


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            return format_ports(value)
        return ", ".join(value)
    return value


def sheets_of(stored: Stored) -> list[Sheet]:
    """The workbook's sheets, rows in natural-key order."""
    result = []
    for sheet in SHEETS:
        rows = stored.rows[sheet.kind]
        ordered = sorted(rows)
        result.append(
            Sheet(
                sheet.sheet,
                sheet.headers,
                [[_cell(rows[key][header]) for header in sheet.headers] for key in ordered],
            )
        )
    return result
