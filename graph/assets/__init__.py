"""IT assets in the GraphQL schema: the inventory's queries and mutations, GPU holds, and the
live GPU subscription. Types are in types.py, the request's loaders in loaders.py, inputs in
inputs.py."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from strawberry.types import Info

from domain.assets import Assets, GpuHolds
from domain.assets import Sort as DomainSort
from graph.assets import inputs
from graph.assets.types import (
    CONVERT,
    Connection,
    Container,
    ContainerStatus,
    Datacenter,
    Environment,
    Gpu,
    GpuEvent,
    SearchResult,
    Server,
    ServerStatus,
    Service,
    ServiceKind,
    ServiceStatus,
)
from graph.context import Context, decode_id
from graph.scalars import Long
from graph.shared_events import shared_payload

AssetSort = strawberry.enum(DomainSort, name="AssetSort", description="NAME sorts GPUs by serial")


def _assets(info: Info[Context, None]) -> Assets:
    return info.context.services.assets


def _gpus(info: Info[Context, None]) -> GpuHolds:
    return info.context.services.gpus


def _optional_id(value: strawberry.ID | None, field: str) -> int | None:
    return None if value is None else decode_id(value, field)


def _value(enum_value) -> str | None:
    return None if enum_value is None else enum_value.value


def _sort(sort) -> DomainSort:
    return DomainSort(sort.value) if sort is not None else DomainSort.NAME


@strawberry.type
class AssetQuery:
    @strawberry.field(description="Every datacenter, by name.")
    async def datacenters(self, info: Info[Context, None]) -> list[Datacenter]:
        await info.context.require_viewer()
        return [Datacenter.of(row) for row in await _assets(info).datacenters()]

    @strawberry.field
    async def datacenter(self, info: Info[Context, None], id: strawberry.ID) -> Datacenter | None:
        await info.context.require_viewer()
        row = await _assets(info).get("datacenter", decode_id(id))
        return None if row is None else Datacenter.of(row)

    @strawberry.field(description="Every environment, by name.")
    async def environments(self, info: Info[Context, None]) -> list[Environment]:
        await info.context.require_viewer()
        return [Environment.of(row) for row in await _assets(info).environments()]

    @strawberry.field
    async def environment(self, info: Info[Context, None], id: strawberry.ID) -> Environment | None:
        await info.context.require_viewer()
        row = await _assets(info).get("environment", decode_id(id))
        return None if row is None else Environment.of(row)

    @strawberry.field(
        description="Servers, filtered; search matches name, host name and addresses."
    )
    async def servers(
        self,
        info: Info[Context, None],
        status: ServerStatus | None = None,
        datacenter_id: strawberry.ID | None = None,
        search: str | None = None,
        first: int | None = None,
        after: str | None = None,
        environment: str | None = None,
        tag: str | None = None,
        sort: AssetSort | None = None,
    ) -> Connection[Server]:
        await info.context.require_viewer()
        page = await _assets(info).servers(
            status=_value(status),
            datacenter_id=_optional_id(datacenter_id, "datacenterId"),
            environment=environment,
            tag=tag,
            text=search,
            sort=_sort(sort),
            first=first,
            after=after,
        )
        return Connection.of(page, Server.of)

    @strawberry.field
    async def server(self, info: Info[Context, None], id: strawberry.ID) -> Server | None:
        await info.context.require_viewer()
        row = await _assets(info).get("server", decode_id(id))
        return None if row is None else Server.of(row)

    @strawberry.field(description="Containers, filtered; search matches name and image.")
    async def containers(
        self,
        info: Info[Context, None],
        status: ContainerStatus | None = None,
        server_id: strawberry.ID | None = None,
        environment: str | None = None,
        search: str | None = None,
        sort: AssetSort | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Container]:
        await info.context.require_viewer()
        page = await _assets(info).containers(
            status=_value(status),
            server_id=_optional_id(server_id, "serverId"),
            environment=environment,
            text=search,
            sort=_sort(sort),
            first=first,
            after=after,
        )
        return Connection.of(page, Container.of)

    @strawberry.field
    async def container(self, info: Info[Context, None], id: strawberry.ID) -> Container | None:
        await info.context.require_viewer()
        row = await _assets(info).get("container", decode_id(id))
        return None if row is None else Container.of(row)

    @strawberry.field
    async def services(
        self,
        info: Info[Context, None],
        status: ServiceStatus | None = None,
        kind: ServiceKind | None = None,
        container_id: strawberry.ID | None = None,
        search: str | None = None,
        sort: AssetSort | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Service]:
        await info.context.require_viewer()
        page = await _assets(info).services(
            status=_value(status),
            kind=_value(kind),
            container_id=_optional_id(container_id, "containerId"),
            text=search,
            sort=_sort(sort),
            first=first,
            after=after,
        )
        return Connection.of(page, Service.of)

    @strawberry.field
    async def service(self, info: Info[Context, None], id: strawberry.ID) -> Service | None:
        await info.context.require_viewer()
        row = await _assets(info).get("service", decode_id(id))
        return None if row is None else Service.of(row)

    @strawberry.field(description="GPUs, filtered; free: only unheld ones (false: only held).")
    async def gpus(
        self,
        info: Info[Context, None],
        free: bool | None = None,
        holder: str | None = None,
        first: int | None = None,
        after: str | None = None,
        server_id: strawberry.ID | None = None,
        datacenter_id: strawberry.ID | None = None,
        search: str | None = None,
        sort: AssetSort | None = None,
    ) -> Connection[Gpu]:
        await info.context.require_viewer()
        page = await _assets(info).gpus(
            free=free,
            holder=holder,
            server_id=_optional_id(server_id, "serverId"),
            datacenter_id=_optional_id(datacenter_id, "datacenterId"),
            text=search,
            sort=_sort(sort),
            first=first,
            after=after,
        )
        return Connection.of(page, Gpu.of)

    @strawberry.field
    async def gpu(self, info: Info[Context, None], id: strawberry.ID) -> Gpu | None:
        await info.context.require_viewer()
        view = await _assets(info).gpu(decode_id(id))
        return None if view is None else Gpu.of(view)

    @strawberry.field(
        description="Stored GPU events with seq > since, oldest first; of one GPU, or naming "
        "one user (as holder or actor)."
    )
    async def gpu_history(
        self,
        info: Info[Context, None],
        since: Long | None = None,
        first: int | None = None,
        gpu_id: strawberry.ID | None = None,
        username: str | None = None,
    ) -> list[GpuEvent]:
        await info.context.require_viewer()
        changes = await _gpus(info).history(
            since=since, first=first, gpu_id=_optional_id(gpu_id, "gpuId"), username=username
        )
        return [GpuEvent.of(change) for change in changes]

    @strawberry.field(
        description="Every kind of asset whose name (serial, host name, address, image) "
        "contains the text, best matches first."
    )
    async def search(
        self, info: Info[Context, None], text: str, first: int | None = None
    ) -> list[SearchResult]:
        await info.context.require_viewer()
        return [CONVERT[kind](row) for kind, row in await _assets(info).search(text, first)]


@strawberry.type
class AssetMutation:
    @strawberry.mutation
    async def create_datacenter(
        self, info: Info[Context, None], input: inputs.CreateDatacenterInput
    ) -> Datacenter:
        return Datacenter.of(await _create(info, "datacenter", input))

    @strawberry.mutation(description="With version: CONFLICT (with the current values) if stale.")
    async def update_datacenter(
        self, info: Info[Context, None], id: strawberry.ID, input: inputs.UpdateDatacenterInput
    ) -> Datacenter:
        return Datacenter.of(await _update(info, "datacenter", id, input))

    @strawberry.mutation(description="CONFLICT while it still has servers.")
    async def delete_datacenter(self, info: Info[Context, None], id: strawberry.ID) -> Datacenter:
        return Datacenter.of(await _delete(info, "datacenter", id))

    @strawberry.mutation
    async def create_environment(
        self, info: Info[Context, None], input: inputs.CreateEnvironmentInput
    ) -> Environment:
        return Environment.of(await _create(info, "environment", input))

    @strawberry.mutation
    async def update_environment(
        self, info: Info[Context, None], id: strawberry.ID, input: inputs.UpdateEnvironmentInput
    ) -> Environment:
        return Environment.of(await _update(info, "environment", id, input))

    @strawberry.mutation(description="Servers and containers in it are left without one.")
    async def delete_environment(self, info: Info[Context, None], id: strawberry.ID) -> Environment:
        return Environment.of(await _delete(info, "environment", id))

    @strawberry.mutation
    async def create_server(
        self, info: Info[Context, None], input: inputs.CreateServerInput
    ) -> Server:
        return Server.of(await _create(info, "server", input))

    @strawberry.mutation(description="With version: CONFLICT (with the current values) if stale.")
    async def update_server(
        self, info: Info[Context, None], id: strawberry.ID, input: inputs.UpdateServerInput
    ) -> Server:
        return Server.of(await _update(info, "server", id, input))

    @strawberry.mutation(
        description="CONFLICT while it still has containers or GPUs, unless cascade."
    )
    async def delete_server(
        self, info: Info[Context, None], id: strawberry.ID, cascade: bool | None = None
    ) -> Server:
        return Server.of(await _delete(info, "server", id, cascade))

    @strawberry.mutation
    async def create_container(
        self, info: Info[Context, None], input: inputs.CreateContainerInput
    ) -> Container:
        return Container.of(await _create(info, "container", input))

    @strawberry.mutation(description="With version: CONFLICT (with the current values) if stale.")
    async def update_container(
        self, info: Info[Context, None], id: strawberry.ID, input: inputs.UpdateContainerInput
    ) -> Container:
        return Container.of(await _update(info, "container", id, input))

    @strawberry.mutation(description="CONFLICT while it still has services, unless cascade.")
    async def delete_container(
        self, info: Info[Context, None], id: strawberry.ID, cascade: bool | None = None
    ) -> Container:
        return Container.of(await _delete(info, "container", id, cascade))

    @strawberry.mutation
    async def create_service(
        self, info: Info[Context, None], input: inputs.CreateServiceInput
    ) -> Service:
        return Service.of(await _create(info, "service", input))

    @strawberry.mutation(description="With version: CONFLICT (with the current values) if stale.")
    async def update_service(
        self, info: Info[Context, None], id: strawberry.ID, input: inputs.UpdateServiceInput
    ) -> Service:
        return Service.of(await _update(info, "service", id, input))

    @strawberry.mutation
    async def delete_service(self, info: Info[Context, None], id: strawberry.ID) -> Service:
        return Service.of(await _delete(info, "service", id))

    @strawberry.mutation
    async def create_gpu(self, info: Info[Context, None], input: inputs.CreateGpuInput) -> Gpu:
        row = await _create(info, "gpu", input)
        return Gpu.of(await _assets(info).gpu(row.id))

    @strawberry.mutation(description="With version: CONFLICT (with the current values) if stale.")
    async def update_gpu(
        self, info: Info[Context, None], id: strawberry.ID, input: inputs.UpdateGpuInput
    ) -> Gpu:
        row = await _update(info, "gpu", id, input)
        return Gpu.of(await _assets(info).gpu(row.id))

    @strawberry.mutation(description="A held GPU is force-released first (the holder is told).")
    async def delete_gpu(self, info: Info[Context, None], id: strawberry.ID) -> Gpu:
        view = await _assets(info).gpu(decode_id(id))
        await _delete(info, "gpu", id)
        return Gpu.of(view)

    @strawberry.mutation(
        description="A free GPU for yourself; CONFLICT naming the holder when it is taken."
    )
    async def claim_gpu(
        self, info: Info[Context, None], id: strawberry.ID, due_back: datetime | None = None
    ) -> Gpu:
        actor = await info.context.require_viewer()
        return Gpu.of(await _gpus(info).claim(actor, decode_id(id), due_back))

    @strawberry.mutation(
        description="Only the holder releases; force lets an admin release anyone's (they are "
        "told). Returns the GPU as it was held."
    )
    async def release_gpu(
        self, info: Info[Context, None], id: strawberry.ID, force: bool | None = None
    ) -> Gpu:
        actor = await info.context.require_viewer()
        return Gpu.of(await _gpus(info).release(actor, decode_id(id), force=bool(force)))

    @strawberry.mutation(description="Admins: give a GPU to someone.")
    async def assign_gpu(
        self,
        info: Info[Context, None],
        id: strawberry.ID,
        username: str,
        due_back: datetime | None = None,
    ) -> Gpu:
        actor = await info.context.require_viewer()
        return Gpu.of(await _gpus(info).assign(actor, decode_id(id), username, due_back))

    @strawberry.mutation(
        description="Asks the holder to release: they see a RELEASE_REQUESTED event and a mail."
    )
    async def request_gpu_release(
        self, info: Info[Context, None], id: strawberry.ID, message: str | None = None
    ) -> GpuEvent:
        actor = await info.context.require_viewer()
        return GpuEvent.of(await _gpus(info).request_release(actor, decode_id(id), message))


async def _create(info: Info[Context, None], kind: str, given):
    actor = await info.context.require_viewer()
    return await _assets(info).create(actor, kind, inputs.values_of(given))


async def _update(info: Info[Context, None], kind: str, id: strawberry.ID, given):
    actor = await info.context.require_viewer()
    values = inputs.values_of(given)
    version = values.pop("version", None)
    return await _assets(info).update(actor, kind, decode_id(id), values, version)


async def _delete(info: Info[Context, None], kind: str, id: strawberry.ID, cascade=None):
    actor = await info.context.require_viewer()
    return await _assets(info).delete(actor, kind, decode_id(id), cascade=bool(cascade))


@strawberry.type
class AssetSubscription:
    @strawberry.subscription(
        description="Live GPU changes. With since, first every stored event with seq > since, "
        "then live ones."
    )
    async def gpu_events(
        self, info: Info[Context, None], since: Long | None = None
    ) -> AsyncGenerator[GpuEvent, None]:
        await info.context.require_viewer()
        gpus = _gpus(info)
        changes = gpus.follow(
            await gpus.stream_id(),
            since=since,
            **info.context.live_options(),
        )
        try:
            async for change in changes:
                yield shared_payload(change, GpuEvent.of)
        finally:
            await changes.aclose()
