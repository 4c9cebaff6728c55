"""IT asset types: the tree (datacenter → servers → containers → services, server → GPUs),
each edge resolved through the request's DataLoaders, so a tree of any size costs one query
per level."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

import strawberry
from strawberry.types import Info

from domain.assets import GpuEventKind as DomainGpuEventKind
from domain.assets import GpuView
from domain.assets import records as asset_records
from domain.pagination import Page
from domain.streams import Change
from graph.assets.loaders import loaders
from graph.context import Context
from graph.identity import User
from graph.pagination import PageInfo
from graph.scalars import Long

ServerStatus = strawberry.enum(asset_records.ServerStatus, name="ServerStatus")
ContainerStatus = strawberry.enum(asset_records.ContainerStatus, name="ContainerStatus")
ServiceStatus = strawberry.enum(asset_records.ServiceStatus, name="ServiceStatus")
ServiceKind = strawberry.enum(asset_records.ServiceKind, name="ServiceKind")
Protocol = strawberry.enum(asset_records.Protocol, name="Protocol")


GpuEventKind = strawberry.enum(DomainGpuEventKind, name="GpuEventKind")


def _id(value: int) -> strawberry.ID:
    return strawberry.ID(str(value))


@strawberry.type
class Environment:
    id: strawberry.ID
    name: str
    color: str = strawberry.field(description="#rrggbb")
    version: int

    @classmethod
    def of(cls, row) -> Environment:
        return cls(id=_id(row.id), name=row.name, color=row.color, version=row.version)


async def _environment(info: Info[Context, None], environment_id: int | None):
    if environment_id is None:
        return None
    row = await loaders(info).environment.load(environment_id)
    return None if row is None else Environment.of(row)


@strawberry.type
class Datacenter:
    id: strawberry.ID
    name: str
    location: str | None
    description: str | None
    version: int
    _row: strawberry.Private[Any]

    @classmethod
    def of(cls, row) -> Datacenter:
        return cls(
            id=_id(row.id),
            name=row.name,
            location=row.location,
            description=row.description,
            version=row.version,
            _row=row,
        )

    @strawberry.field
    async def servers(self, info: Info[Context, None]) -> list[Server]:
        rows = await loaders(info).servers_of_datacenter.load(self._row.id)
        return [Server.of(row) for row in rows]


@strawberry.type
class PortMapping:
    host_port: int
    container_port: int
    protocol: Protocol


@strawberry.type
class Server:
    id: strawberry.ID
    name: str
    hostname: str | None
    management_ip: str | None
    public_ip: str | None
    cpu_cores: int | None
    memory_gb: int | None
    disk_gb: int | None
    os: str | None
    status: ServerStatus
    notes: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    _row: strawberry.Private[Any]

    @classmethod
    def of(cls, row) -> Server:
        return cls(
            id=_id(row.id),
            name=row.name,
            hostname=row.hostname,
            management_ip=row.management_ip,
            public_ip=row.public_ip,
            cpu_cores=row.cpu_cores,
            memory_gb=row.memory_gb,
            disk_gb=row.disk_gb,
            os=row.os,
            status=ServerStatus(row.status),
            notes=row.notes,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            _row=row,
        )

    @strawberry.field
    async def datacenter(self, info: Info[Context, None]) -> Datacenter:
        return Datacenter.of(await loaders(info).datacenter.load(self._row.datacenter_id))

    @strawberry.field
    async def environment(self, info: Info[Context, None]) -> Environment | None:
        return await _environment(info, self._row.environment_id)

    @strawberry.field
    async def tags(self, info: Info[Context, None]) -> list[str]:
        return await loaders(info).tags_of_server.load(self._row.id)

    @strawberry.field
    async def containers(self, info: Info[Context, None]) -> list[Container]:
        rows = await loaders(info).containers_of_server.load(self._row.id)
        return [Container.of(row) for row in rows]

    @strawberry.field
    async def gpus(self, info: Info[Context, None]) -> list[Gpu]:
        return [Gpu.of(view) for view in await loaders(info).gpus_of_server.load(self._row.id)]


@strawberry.type
class Container:
    id: strawberry.ID
    name: str
    image: str
    cpu_limit: Decimal | None = strawberry.field(description='CPU cores, e.g. "1.5"')
    memory_limit_mb: int | None
    status: ContainerStatus
    version: int
    _row: strawberry.Private[Any]

    @classmethod
    def of(cls, row) -> Container:
        return cls(
            id=_id(row.id),
            name=row.name,
            image=row.image,
            cpu_limit=None if row.cpu_limit is None else Decimal(str(row.cpu_limit)),
            memory_limit_mb=row.memory_limit_mb,
            status=ContainerStatus(row.status),
            version=row.version,
            _row=row,
        )

    @strawberry.field
    async def server(self, info: Info[Context, None]) -> Server:
        return Server.of(await loaders(info).server.load(self._row.server_id))

    @strawberry.field
    async def environment(self, info: Info[Context, None]) -> Environment | None:
        return await _environment(info, self._row.environment_id)

    @strawberry.field
    async def ports(self, info: Info[Context, None]) -> list[PortMapping]:
        return [
            PortMapping(
                host_port=port.host_port,
                container_port=port.container_port,
                protocol=Protocol(port.protocol),
            )
            for port in await loaders(info).ports_of_container.load(self._row.id)
        ]

    @strawberry.field
    async def services(self, info: Info[Context, None]) -> list[Service]:
        rows = await loaders(info).services_of_container.load(self._row.id)
        return [Service.of(row) for row in rows]


@strawberry.type
class Service:
    id: strawberry.ID
    name: str
    kind: ServiceKind
    port: int | None
    health_check_url: str | None
    status: ServiceStatus
    version: int
    _row: strawberry.Private[Any]

    @classmethod
    def of(cls, row) -> Service:
        return cls(
            id=_id(row.id),
            name=row.name,
            kind=ServiceKind(row.kind),
            port=row.port,
            health_check_url=row.health_check_url,
            status=ServiceStatus(row.status),
            version=row.version,
            _row=row,
        )

    @strawberry.field
    async def container(self, info: Info[Context, None]) -> Container:
        return Container.of(await loaders(info).container.load(self._row.container_id))


@strawberry.type
class Gpu:
    id: strawberry.ID
    model: str
    serial: str
    memory_gb: int | None
    version: int | None = strawberry.field(description="Null on a GPU that was deleted.")
    holder: User | None
    held_since: datetime | None
    due_back: datetime | None = strawberry.field(
        description="When the holder said they would give it back."
    )
    fencing_token: Long | None = strawberry.field(
        description="The seq of the event that took the current hold: it only grows."
    )
    _server_id: strawberry.Private[int | None]

    @classmethod
    def of(cls, view: GpuView) -> Gpu:
        gpu, hold = view.gpu, view.hold
        return cls(
            id=_id(gpu.id),
            model=gpu.model,
            serial=gpu.serial,
            memory_gb=gpu.memory_gb,
            version=gpu.version,
            holder=User.of_ref(view.holder) if view.holder else None,
            held_since=hold.since if hold else None,
            due_back=hold.due_back if hold else None,
            fencing_token=hold.fencing_token if hold else None,
            _server_id=gpu.server_id,
        )

    @strawberry.field
    async def server(self, info: Info[Context, None]) -> Server | None:
        if self._server_id is None:
            return None
        row = await loaders(info).server.load(self._server_id)
        return None if row is None else Server.of(row)


@strawberry.type
class GpuEvent:
    seq: Long
    kind: GpuEventKind
    actor: User | None
    message: str | None
    at: datetime
    _change: strawberry.Private[Change]

    @classmethod
    def of(cls, change: Change) -> GpuEvent:
        event = change.event
        return cls(
            seq=event.seq,
            kind=GpuEventKind(event.kind),
            actor=User.of_ref(change.actor) if change.actor else None,
            message=event.message,
            at=event.at,
            _change=change,
        )

    @strawberry.field(
        description="The GPU with the hold this event is about (as it was at the event)."
    )
    async def gpu(self, info: Info[Context, None]) -> Gpu:
        event, holder = self._change.event, self._change.holder
        current = await loaders(info).gpu_row.load(event.gpu_id)
        return Gpu(
            id=_id(event.gpu_id),
            model=event.model,
            serial=event.serial,
            memory_gb=current.memory_gb if current else None,
            version=current.version if current else None,
            holder=User.of_ref(holder) if holder else None,
            held_since=event.since,
            due_back=event.due_back,
            fencing_token=event.fencing_token,
            _server_id=current.server_id if current else None,
        )


T = TypeVar("T")


@strawberry.type
class Edge(Generic[T]):
    node: T
    cursor: str


@strawberry.type
class Connection(Generic[T]):
    """A page of a list; Strawberry names `Connection[Server]` ServerConnection."""

    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int

    @classmethod
    def of(cls, page: Page, convert: Callable[[Any], T]) -> Connection[T]:
        return cls(
            edges=[
                Edge(node=convert(item), cursor=cursor)
                for item, cursor in zip(page.items, page.cursors, strict=True)
            ],
            page_info=PageInfo.of(page),
            total_count=page.total,
        )


SearchResult = Annotated[
    Datacenter | Environment | Server | Container | Service | Gpu,
    strawberry.union("SearchResult", description="One hit of search, of any kind of asset."),
]

CONVERT = {
    "datacenter": Datacenter.of,
    "environment": Environment.of,
    "server": Server.of,
    "container": Container.of,
    "service": Service.of,
    "gpu": Gpu.of,
}
