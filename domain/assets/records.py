"""What an asset of each kind may hold: the checks every write runs (the API's and an import's
alike), and how a row reads in the audit log and in conflicts.

A check takes the value a client gave and returns what is stored, or raises `Invalid` with a
message; the caller names the field. Field names are the API's (camelCase), so an error or an
audit entry names what the client sent.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import Any

from db.assets import Container, Datacenter, Environment, Gpu, PortMapping, Server, Service
from domain.checks import (
    Invalid,
    Kind,
    address,
    amount,
    camel,
    choice,
    color,
    count,
    hostname,
    http_url,
    text,
)


class ServerStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    MAINTENANCE = "MAINTENANCE"
    OFFLINE = "OFFLINE"
    DECOMMISSIONED = "DECOMMISSIONED"


class ContainerStatus(enum.Enum):
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"


class ServiceStatus(enum.Enum):
    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"
    UNKNOWN = "UNKNOWN"


class ServiceKind(enum.Enum):
    WEB = "WEB"
    DATABASE = "DATABASE"
    CACHE = "CACHE"
    QUEUE = "QUEUE"
    OTHER = "OTHER"


class Protocol(enum.Enum):
    TCP = "TCP"
    UDP = "UDP"


TAG = re.compile(r"^[\w.:/+-]{1,50}$")
MAX_TAGS = 20


def tags(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    if not isinstance(value, list | tuple):
        raise Invalid("must be a list of tags")
    result: list[str] = []
    for tag in value:
        tag = tag.strip().lower() if isinstance(tag, str) else tag
        if tag == "":
            continue
        if not isinstance(tag, str) or not TAG.match(tag):
            raise Invalid(f"{tag!r} is not a tag (letters, digits and . : / + - _, up to 50)")
        if tag not in result:
            result.append(tag)
    if len(result) > MAX_TAGS:
        raise Invalid(f"at most {MAX_TAGS} tags")
    return sorted(result)


MAX_PORTS = 100


def ports(value: Any) -> list[dict[str, Any]]:
    """Port mappings: ports 1-65535, no host port and protocol twice."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise Invalid("must be a list of port mappings")
    if len(value) > MAX_PORTS:
        raise Invalid(f"at most {MAX_PORTS} port mappings")
    port = count(low=1, high=65535)
    protocol = choice(Protocol, Protocol.TCP)
    seen = set()
    result = []
    for mapping in value:
        try:
            item = {
                "host_port": port(mapping.get("host_port")),
                "container_port": port(mapping.get("container_port")),
                "protocol": protocol(mapping.get("protocol")),
            }
        except (Invalid, AttributeError) as error:
            raise Invalid(f"port mapping {mapping!r}: {error}") from None
        if item["host_port"] is None or item["container_port"] is None:
            raise Invalid("every port mapping needs hostPort and containerPort")
        key = (item["host_port"], item["protocol"])
        if key in seen:
            raise Invalid(f"host port {key[0]}/{key[1].lower()} is mapped twice")
        seen.add(key)
        result.append(item)
    return result


def format_ports(mappings: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{m['host_port']}:{m['container_port']}/{m['protocol'].lower()}" for m in mappings
    )


PORT_TEXT = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*(?:/\s*(tcp|udp))?\s*$", re.IGNORECASE)


def parse_ports(value: Any) -> list[dict[str, Any]]:
    """Port mappings written as text, e.g. "8080:80/tcp, 5353:53/udp"."""
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise Invalid('must be text like "8080:80/tcp, 5353:53/udp"')
    mappings = []
    for part in value.split(","):
        if not part.strip():
            continue
        found = PORT_TEXT.match(part)
        if found is None:
            raise Invalid(f'{part.strip()!r} is not like "8080:80/tcp"')
        host, inner, protocol = found.groups()
        mappings.append(
            {
                "host_port": int(host),
                "container_port": int(inner),
                "protocol": (protocol or "tcp").upper(),
            }
        )
    return ports(mappings)


# -- kinds --------------------------------------------------------------------------------------


def _reference(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise Invalid("is not a valid id")
    return value


def _name(value: Any) -> str | None:
    return text(100, required=True)(value)


DATACENTER = Kind(
    "datacenter",
    Datacenter,
    {"name": _name, "location": text(200), "description": text(5000)},
    frozenset({"name"}),
    {"uq_datacenters_name": "name", "datacenters.name": "name"},
)
ENVIRONMENT = Kind(
    "environment",
    Environment,
    {"name": _name, "color": color},
    frozenset({"name", "color"}),
    {"uq_environments_name": "name", "environments.name": "name"},
)
SERVER = Kind(
    "server",
    Server,
    {
        "name": _name,
        "hostname": hostname,
        "management_ip": address,
        "public_ip": address,
        "cpu_cores": count(),
        "memory_gb": count(),
        "disk_gb": count(),
        "os": text(100),
        "status": choice(ServerStatus, ServerStatus.ACTIVE),
        "datacenter_id": _reference,
        "environment": text(100),
        "notes": text(10000),
        "tags": tags,
    },
    frozenset({"name", "datacenter_id"}),
    {"uq_servers_name": "name", "servers.name": "name"},
)
CONTAINER = Kind(
    "container",
    Container,
    {
        "name": _name,
        "image": text(300, required=True),
        "server_id": _reference,
        "cpu_limit": amount(high=1024),
        "memory_limit_mb": count(),
        "ports": ports,
        "status": choice(ContainerStatus, ContainerStatus.RUNNING),
        "environment": text(100),
    },
    frozenset({"name", "image", "server_id"}),
    {
        "uq_containers_server_id": "name",
        "containers.server_id, containers.name": "name",
        "uq_port_mappings_server_id": "ports",
        "port_mappings.server_id": "ports",
    },
)
SERVICE = Kind(
    "service",
    Service,
    {
        "name": _name,
        "kind": choice(ServiceKind),
        "port": count(low=1, high=65535),
        "health_check_url": http_url,
        "status": choice(ServiceStatus, ServiceStatus.UNKNOWN),
        "container_id": _reference,
    },
    frozenset({"name", "kind", "container_id"}),
    {"uq_services_container_id": "name", "services.container_id, services.name": "name"},
)
GPU = Kind(
    "gpu",
    Gpu,
    {
        "model": text(100, required=True),
        "serial": text(100, required=True),
        "memory_gb": count(),
        "server_id": _reference,
    },
    frozenset({"model", "serial"}),
    {"uq_gpus_serial": "serial", "gpus.serial": "serial"},
)

KINDS = {kind.name: kind for kind in (DATACENTER, ENVIRONMENT, SERVER, CONTAINER, SERVICE, GPU)}

RECORDED = {
    "datacenter": ("name", "location", "description"),
    "environment": ("name", "color"),
    "server": (
        "name",
        "hostname",
        "management_ip",
        "public_ip",
        "cpu_cores",
        "memory_gb",
        "disk_gb",
        "os",
        "status",
        "datacenter_id",
        "environment_id",
        "notes",
    ),
    "container": (
        "name",
        "image",
        "server_id",
        "cpu_limit",
        "memory_limit_mb",
        "status",
        "environment_id",
    ),
    "service": ("name", "kind", "port", "health_check_url", "status", "container_id"),
    "gpu": ("model", "serial", "memory_gb", "server_id"),
}
"""The columns of each kind an audit entry and a conflict show."""


def describe(
    kind: str,
    row: Any,
    *,
    tags: list[str] | None = None,
    ports: list[PortMapping] | list[dict] | None = None,
) -> dict[str, Any]:
    """A row as the API names its fields (ids as strings), for audit entries and conflicts."""
    values: dict[str, Any] = {"id": str(row.id)}
    for name in RECORDED[kind]:
        value = getattr(row, name)
        if name.endswith("_id") and value is not None:
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        values[camel(name)] = value
    if tags is not None:
        values["tags"] = list(tags)
    if ports is not None:
        values["ports"] = [
            {
                "hostPort": _get(port, "host_port"),
                "containerPort": _get(port, "container_port"),
                "protocol": _get(port, "protocol"),
            }
            for port in ports
        ]
    if hasattr(row, "version"):
        values["version"] = row.version
    return values


def _get(item: Any, name: str) -> Any:
    return item[name] if isinstance(item, dict) else getattr(item, name)
