"""Inputs of the asset mutations. A field left out is not changed (UNSET); one given as null is
cleared. `values_of` turns an input into the domain's plain values (ids decoded)."""

from __future__ import annotations

import dataclasses
import enum
from decimal import Decimal
from typing import Any

import strawberry
from strawberry import UNSET

from graph.assets.types import ContainerStatus, Protocol, ServerStatus, ServiceKind, ServiceStatus
from graph.context import decode_id


def values_of(given: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in dataclasses.fields(given):
        value = getattr(given, field.name)
        if value is UNSET:
            continue
        if field.name.endswith("_id") and value is not None:
            head, *rest = field.name.split("_")
            value = decode_id(value, head + "".join(part.capitalize() for part in rest))
        elif isinstance(value, Decimal):
            value = float(value)
        elif isinstance(value, enum.Enum):
            value = value.value
        elif field.name == "ports" and value is not None:
            value = [
                {
                    "host_port": port.host_port,
                    "container_port": port.container_port,
                    "protocol": None if port.protocol in (None, UNSET) else port.protocol.value,
                }
                for port in value
            ]
        values[field.name] = value
    return values


def _version() -> Any:
    return strawberry.field(
        default=UNSET, description="The version you read: CONFLICT if the row has changed since."
    )


@strawberry.input
class CreateDatacenterInput:
    name: str
    location: str | None = UNSET
    description: str | None = UNSET


@strawberry.input
class UpdateDatacenterInput:
    name: str | None = UNSET
    location: str | None = UNSET
    description: str | None = UNSET
    version: int | None = _version()


@strawberry.input
class CreateEnvironmentInput:
    name: str
    color: str = strawberry.field(description="#rrggbb")


@strawberry.input
class UpdateEnvironmentInput:
    name: str | None = UNSET
    color: str | None = UNSET
    version: int | None = _version()


@strawberry.input
class CreateServerInput:
    name: str
    datacenter_id: strawberry.ID
    environment: str | None = strawberry.field(default=UNSET, description="Its name.")
    hostname: str | None = UNSET
    management_ip: str | None = UNSET
    public_ip: str | None = UNSET
    cpu_cores: int | None = UNSET
    memory_gb: int | None = UNSET
    disk_gb: int | None = UNSET
    os: str | None = UNSET
    status: ServerStatus | None = UNSET
    notes: str | None = UNSET
    tags: list[str] | None = UNSET


@strawberry.input
class UpdateServerInput:
    name: str | None = UNSET
    datacenter_id: strawberry.ID | None = UNSET
    environment: str | None = UNSET
    hostname: str | None = UNSET
    management_ip: str | None = UNSET
    public_ip: str | None = UNSET
    cpu_cores: int | None = UNSET
    memory_gb: int | None = UNSET
    disk_gb: int | None = UNSET
    os: str | None = UNSET
    status: ServerStatus | None = UNSET
    notes: str | None = UNSET
    tags: list[str] | None = UNSET
    version: int | None = _version()


@strawberry.input
class PortMappingInput:
    host_port: int
    container_port: int
    protocol: Protocol | None = strawberry.field(default=UNSET, description="TCP if not given.")


@strawberry.input
class CreateContainerInput:
    name: str
    image: str
    server_id: strawberry.ID
    ports: list[PortMappingInput] | None = UNSET
    cpu_limit: Decimal | None = UNSET
    memory_limit_mb: int | None = UNSET
    status: ContainerStatus | None = UNSET
    environment: str | None = UNSET


@strawberry.input
class UpdateContainerInput:
    name: str | None = UNSET
    image: str | None = UNSET
    server_id: strawberry.ID | None = UNSET
    ports: list[PortMappingInput] | None = UNSET
    cpu_limit: Decimal | None = UNSET
    memory_limit_mb: int | None = UNSET
    status: ContainerStatus | None = UNSET
    environment: str | None = UNSET
    version: int | None = _version()


@strawberry.input
class CreateServiceInput:
    name: str
    kind: ServiceKind
    container_id: strawberry.ID
    port: int | None = UNSET
    health_check_url: str | None = UNSET
    status: ServiceStatus | None = UNSET


@strawberry.input
class UpdateServiceInput:
    name: str | None = UNSET
    kind: ServiceKind | None = UNSET
    container_id: strawberry.ID | None = UNSET
    port: int | None = UNSET
    health_check_url: str | None = UNSET
    status: ServiceStatus | None = UNSET
    version: int | None = _version()


@strawberry.input
class CreateGpuInput:
    model: str
    serial: str
    memory_gb: int | None = UNSET
    server_id: strawberry.ID | None = UNSET


@strawberry.input
class UpdateGpuInput:
    model: str | None = UNSET
    serial: str | None = UNSET
    memory_gb: int | None = UNSET
    server_id: strawberry.ID | None = UNSET
    version: int | None = _version()
