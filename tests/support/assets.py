"""IT assets for tests: made through the public API like any client, or (for big trees) written
straight into the database."""

from __future__ import annotations

from sqlalchemy import insert

from db.assets import Container, Datacenter, Gpu, PortMapping, Server, ServerTag, Service
from db.base import utcnow
from db.engine import Database
from tests.support.graphql import GraphQL

SERVER_FIELDS = (
    "id name hostname managementIp publicIp cpuCores memoryGb diskGb os status version tags "
    "datacenter { name } environment { name }"
)
CREATE_DATACENTER = """mutation($input: CreateDatacenterInput!) {
  createDatacenter(input: $input) { id name location version } }"""
CREATE_SERVER = f"""mutation($input: CreateServerInput!) {{
  createServer(input: $input) {{ {SERVER_FIELDS} }} }}"""
CREATE_CONTAINER = """mutation($input: CreateContainerInput!) {
  createContainer(input: $input) { id name image status version
    ports { hostPort containerPort protocol } server { name } } }"""
CREATE_SERVICE = """mutation($input: CreateServiceInput!) {
  createService(input: $input) { id name kind port healthCheckUrl container { name } } }"""
CREATE_GPU = """mutation($input: CreateGpuInput!) {
  createGpu(input: $input) { id serial model memoryGb holder { username } server { name } } }"""


async def datacenter(api: GraphQL, token: str, **fields) -> dict:
    return (await api.data(CREATE_DATACENTER, {"input": fields}, token=token))["createDatacenter"]


async def server(api: GraphQL, token: str, datacenter_id: str, **fields) -> dict:
    given = {"datacenterId": datacenter_id, **fields}
    return (await api.data(CREATE_SERVER, {"input": given}, token=token))["createServer"]


async def container(api: GraphQL, token: str, server_id: str, **fields) -> dict:
    given = {"serverId": server_id, **fields}
    return (await api.data(CREATE_CONTAINER, {"input": given}, token=token))["createContainer"]


async def service(api: GraphQL, token: str, container_id: str, **fields) -> dict:
    given = {"containerId": container_id, "kind": "WEB", **fields}
    return (await api.data(CREATE_SERVICE, {"input": given}, token=token))["createService"]


async def gpu(api: GraphQL, token: str, **fields) -> dict:
    return (await api.data(CREATE_GPU, {"input": fields}, token=token))["createGpu"]


async def grow_tree(db: Database, datacenters: int, servers: int, containers: int, tag: str):
    """datacenters x servers (each with a tag and a GPU) x containers (each with a port and a
    service), inserted in bulk; names end in `tag`."""
    now = utcnow()
    stamp = {"version": 1, "created_at": now, "updated_at": now}
    async with db.transaction() as session:
        dc_ids = (
            (
                await session.execute(
                    insert(Datacenter).returning(Datacenter.id, sort_by_parameter_order=True),
                    [{"name": f"dc{d}-{tag}", **stamp} for d in range(datacenters)],
                )
            )
            .scalars()
            .all()
        )
        server_rows = [
            {"name": f"s{d}-{s}-{tag}", "datacenter_id": dc_id, "status": "ACTIVE", **stamp}
            for d, dc_id in enumerate(dc_ids)
            for s in range(servers)
        ]
        server_ids = (
            (
                await session.execute(
                    insert(Server).returning(Server.id, sort_by_parameter_order=True), server_rows
                )
            )
            .scalars()
            .all()
        )
        await session.execute(insert(ServerTag), [{"server_id": i, "tag": "t"} for i in server_ids])
        await session.execute(
            insert(Gpu),
            [
                {"serial": f"g{i}-{tag}", "model": "A100", "server_id": i, **stamp}
                for i in server_ids
            ],
        )
        container_rows = [
            {"name": f"c{c}", "image": "i", "server_id": i, "status": "RUNNING", **stamp}
            for i in server_ids
            for c in range(containers)
        ]
        container_ids = (
            (
                await session.execute(
                    insert(Container).returning(Container.id, sort_by_parameter_order=True),
                    container_rows,
                )
            )
            .scalars()
            .all()
        )
        await session.execute(
            insert(PortMapping),
            [
                {
                    "container_id": cid,
                    "server_id": row["server_id"],
                    "host_port": 1000 + n % 1000,
                    "container_port": 80,
                    "protocol": "TCP",
                    "position": 0,
                }
                for n, (cid, row) in enumerate(zip(container_ids, container_rows, strict=True))
            ],
        )
        await session.execute(
            insert(Service),
            [
                {"name": "svc", "kind": "WEB", "status": "UNKNOWN", "container_id": cid, **stamp}
                for cid in container_ids
            ],
        )
