"""`holdfast demo-data`: a believable IT inventory in a fresh database, to try Holdfast with.

Four datacenters, about fifty servers (web, API, database, cache, queue, CI, monitoring and GPU
machines) with host names, addresses, OS, statuses, tags and environments; containers with images
and port mappings; services with health-check URLs; GPUs on the GPU servers, some of them held by
demo users, one overdue. The same every time (a seeded random), made through the domain layer as
the admin, like any admin's writes (validated, audited); holds through the GPU hold engine, so
they have their events. Only the past is written directly: a hold's start and an overdue due-back
time cannot be made through the API.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from db.assets import GpuHold
from db.base import utcnow
from db.identity import User, get_user_by_username
from domain.access import Role, is_admin
from graph.context import Services

SEED = 20261201
DEMO_PASSWORD = "holdfast-demo"
DEMO_USERS = ("alice", "bob", "carol", "dmitri", "priya", "kenji")
DOMAIN = "corp.example"
CONCURRENCY = 8
"""Writes in flight at once on PostgreSQL; SQLite takes one writer at a time, and waiting for
its write lock costs more than it saves."""


class AlreadyFilled(Exception):
    """The inventory has servers: demo data goes into a fresh database only."""


@dataclass(frozen=True)
class Site:
    code: str
    name: str
    location: str
    description: str
    roles: dict[str, int]
    gpus: tuple[tuple[str, int], ...]
    """(model key, count) per GPU server, in order."""


SITES = (
    Site(
        "fra1",
        "Frankfurt FRA1",
        "Frankfurt am Main, Germany",
        "Main European site: two cages, 2 x 100 Gbit/s uplinks, the training cluster.",
        {"web": 3, "api": 3, "db": 2, "cache": 1, "queue": 1, "ci": 1, "mon": 1, "gpu": 3},
        (("h100", 8), ("h100", 8), ("a100", 8)),
    ),
    Site(
        "ams2",
        "Amsterdam AMS2",
        "Amsterdam, Netherlands",
        "European failover site and the build farm.",
        {"web": 2, "api": 2, "db": 2, "cache": 1, "queue": 1, "ci": 2, "mon": 1, "gpu": 2},
        (("a100", 8), ("rtx6000", 4)),
    ),
    Site(
        "iad1",
        "Ashburn IAD1",
        "Ashburn, Virginia, USA",
        "North American site: customer-facing API and inference.",
        {"web": 3, "api": 2, "db": 2, "cache": 1, "queue": 1, "ci": 1, "mon": 1, "gpu": 2},
        (("l40s", 4), ("h100", 8)),
    ),
    Site(
        "sin1",
        "Singapore SIN1",
        "Singapore",
        "Asia-Pacific edge: web, a read replica and a small inference pool.",
        {"web": 3, "api": 1, "db": 2, "cache": 1, "mon": 1, "gpu": 1},
        (("l40s", 4),),
    ),
)

GPU_MODELS = {
    "h100": ("NVIDIA H100 SXM5", 80),
    "a100": ("NVIDIA A100 SXM4", 80),
    "l40s": ("NVIDIA L40S", 48),
    "rtx6000": ("NVIDIA RTX 6000 Ada", 48),
}

HARDWARE = {  # cores, memory GB, disk GB
    "web": (8, 32, 240),
    "api": (16, 64, 480),
    "db": (32, 256, 3840),
    "cache": (8, 64, 240),
    "queue": (8, 32, 960),
    "ci": (32, 128, 1920),
    "mon": (8, 32, 1920),
    "gpu": (96, 1024, 15360),
}
OS = {
    "web": ("Ubuntu 24.04 LTS", "Ubuntu 22.04 LTS"),
    "api": ("Ubuntu 24.04 LTS", "Debian 12"),
    "db": ("Rocky Linux 9.4", "Debian 12"),
    "cache": ("Debian 12",),
    "queue": ("Debian 12", "Ubuntu 22.04 LTS"),
    "ci": ("Ubuntu 22.04 LTS",),
    "mon": ("Debian 12",),
    "gpu": ("Ubuntu 22.04 LTS",),
}
TAGS = {
    "web": ("web", "public", "nginx"),
    "api": ("api", "k8s"),
    "db": ("db", "backup:daily", "raid10"),
    "cache": ("cache", "redis"),
    "queue": ("queue", "rabbitmq"),
    "ci": ("ci", "build"),
    "mon": ("monitoring",),
    "gpu": ("gpu", "cuda-12.4", "infiniband"),
}

# Containers of each role: name, image, ports ("host:container[/udp]"), and its service (name,
# kind, port, health-check path) or None.
CONTAINERS = {
    "web": (
        ("nginx", "nginx:1.27-alpine", "80:80, 443:443", ("https", "WEB", 443, "/healthz")),
        (
            "storefront",
            "ghcr.io/acme/storefront:4.8.2",
            "3000:3000",
            ("storefront", "WEB", 3000, "/api/health"),
        ),
    ),
    "api": (
        ("api", "ghcr.io/acme/api:2.14.3", "8080:8080", ("public-api", "WEB", 8080, "/healthz")),
        ("worker", "ghcr.io/acme/api:2.14.3", "", None),
    ),
    "db": (
        ("postgres", "postgres:16.4", "5432:5432", ("postgresql", "DATABASE", 5432, None)),
        (
            "pgbouncer",
            "bitnami/pgbouncer:1.23.1",
            "6432:6432",
            ("pgbouncer", "DATABASE", 6432, None),
        ),
        ("postgres-exporter", "prometheuscommunity/postgres-exporter:v0.15.0", "9187:9187", None),
    ),
    "cache": (("redis", "redis:7.2-alpine", "6379:6379", ("redis", "CACHE", 6379, None)),),
    "queue": (
        (
            "rabbitmq",
            "rabbitmq:3.13-management",
            "5672:5672, 15672:15672",
            ("amqp", "QUEUE", 15672, "/api/health/checks/alarms"),
        ),
    ),
    "ci": (("runner", "gitlab/gitlab-runner:v17.3.1", "", ("ci-runner", "OTHER", None, None)),),
    "mon": (
        (
            "prometheus",
            "prom/prometheus:v2.54.1",
            "9090:9090",
            ("prometheus", "WEB", 9090, "/-/healthy"),
        ),
        ("grafana", "grafana/grafana:11.2.0", "3000:3000", ("grafana", "WEB", 3000, "/api/health")),
        ("node-exporter", "prom/node-exporter:v1.8.2", "9100:9100", None),
        ("syslog", "balabit/syslog-ng:4.8.0", "514:514/udp", None),
    ),
    "gpu": (
        (
            "triton",
            "nvcr.io/nvidia/tritonserver:24.08-py3",
            "8000:8000, 8001:8001, 8002:8002",
            ("inference", "WEB", 8000, "/v2/health/ready"),
        ),
        (
            "dcgm-exporter",
            "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.7-3.5.0-ubuntu22.04",
            "9400:9400",
            None,
        ),
    ),
}
MEMORY_LIMIT_MB = {"postgres": 196_608, "redis": 49_152, "triton": 262_144, "api": 8192}


@dataclass
class Counts:
    datacenters: int = 0
    servers: int = 0
    containers: int = 0
    services: int = 0
    gpus: int = 0
    held: int = 0
    overdue: int = 0
    users: int = 0

    def summary(self, seconds: float) -> str:
        return (
            f"holdfast: demo data: {self.datacenters} datacenters, {self.servers} servers, "
            f"{self.containers} containers, {self.services} services, {self.gpus} GPUs "
            f"({self.held} held, {self.overdue} overdue), {self.users} demo users "
            f"({', '.join(DEMO_USERS)}; password {DEMO_PASSWORD!r}) in {seconds:.1f} s"
        )


def _ports(text: str) -> list[dict]:
    mappings = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        ports, _, protocol = part.partition("/")
        host, inner = ports.split(":")
        mappings.append(
            {
                "host_port": int(host),
                "container_port": int(inner),
                "protocol": (protocol or "tcp").upper(),
            }
        )
    return mappings


async def _bounded(work: Iterable[Awaitable], limit: int) -> list:
    """Run these, `limit` at a time; their results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable):
        async with gate:
            return await job

    return await asyncio.gather(*(one(job) for job in work))


class DemoData:
    def __init__(self, services: Services, admin: User, seed: int = SEED) -> None:
        self.services = services
        self.assets = services.assets
        self.admin = admin
        self.random = random.Random(seed)  # noqa: S311 - demo data, not a secret
        self.counts = Counts()
        self.concurrency = 1 if self.assets.db.dialect == "sqlite" else CONCURRENCY

    async def create(self, kind: str, values: dict):
        return await self.assets.create(self.admin, kind, values)

    async def create_all(self, kind: str, many: Iterable[dict]) -> list:
        return await _bounded((self.create(kind, values) for values in many), self.concurrency)

    # -- the inventory -------------------------------------------------------------------------

    def _server(self, site_index: int, site: Site, role: str, number: int, datacenter_id: int):
        name = f"{site.code}-{role}-{number:02d}"
        cores, memory, disk = HARDWARE[role]
        role_index = list(HARDWARE).index(role)
        environment = "production"
        if role == "ci":
            environment = "development"
        elif number == site.roles[role] and role in ("web", "api") and number > 1:
            environment = "staging"
        tags = list(TAGS[role])
        if role == "db":
            tags.append("primary" if number == 1 else "replica")
        values = {
            "name": name,
            "datacenter_id": datacenter_id,
            "hostname": f"{name}.{site.code}.{DOMAIN}",
            "management_ip": f"10.{10 + site_index}.{role_index}.{10 + number}",
            "cpu_cores": cores,
            "memory_gb": memory,
            "disk_gb": disk,
            "os": self.random.choice(OS[role]),
            "status": "ACTIVE",
            "environment": environment,
            "tags": tags,
        }
        if role == "web":
            values["public_ip"] = f"203.0.113.{site_index * 16 + number + 1}"
        elif role == "api":
            values["public_ip"] = f"198.51.100.{site_index * 16 + number + 1}"
        if role == "gpu":
            values["notes"] = "Claim a GPU on the board (Assets) before starting a job on it."
        return values

    async def inventory(self) -> list[tuple[int, str]]:
        """Datacenters, servers, containers, services and GPUs; the GPUs' (id, serial)."""
        datacenters = await self.create_all(
            "datacenter",
            (
                {"name": site.name, "location": site.location, "description": site.description}
                for site in SITES
            ),
        )
        self.counts.datacenters = len(datacenters)

        planned = []  # (site, role, values)
        for site_index, (site, datacenter) in enumerate(zip(SITES, datacenters, strict=True)):
            for role, how_many in site.roles.items():
                for number in range(1, how_many + 1):
                    values = self._server(site_index, site, role, number, datacenter.id)
                    planned.append((site, role, values))
        # A few machines are not in service: being worked on, down, one being retired.
        others = [values for _, role, values in planned if role != "gpu"]
        for values, status in zip(
            self.random.sample(others, 5),
            ("MAINTENANCE", "MAINTENANCE", "MAINTENANCE", "OFFLINE", "DECOMMISSIONED"),
            strict=True,
        ):
            values["status"] = status
        servers = await self.create_all("server", (values for _, _, values in planned))
        self.counts.servers = len(servers)

        containers = []  # (server values, container spec, its values)
        for (_site, role, server_values), server in zip(planned, servers, strict=True):
            retired = server_values["status"] in ("OFFLINE", "DECOMMISSIONED")
            for name, image, ports, service in CONTAINERS[role]:
                status = "STOPPED" if retired else "RUNNING"
                if not retired and self.random.random() < 0.04:
                    status = "FAILED"
                values = {
                    "name": name,
                    "image": image,
                    "server_id": server.id,
                    "ports": _ports(ports),
                    "status": status,
                    "environment": server_values["environment"],
                    "cpu_limit": {"triton": 32.0, "postgres": 24.0}.get(name),
                    "memory_limit_mb": MEMORY_LIMIT_MB.get(name),
                }
                containers.append((server_values, service, values))
        made = await self.create_all("container", (values for _, _, values in containers))
        self.counts.containers = len(made)

        services = []
        for (server_values, service, values), container in zip(containers, made, strict=True):
            if service is None:
                continue
            name, kind, port, path = service
            host = server_values["hostname"]
            url = None
            if path:
                url = f"https://{host}{path}" if port == 443 else f"http://{host}:{port}{path}"
            status = {"RUNNING": "HEALTHY", "STOPPED": "DOWN", "FAILED": "DOWN"}[values["status"]]
            if status == "HEALTHY" and self.random.random() < 0.08:
                status = self.random.choice(("DEGRADED", "UNKNOWN"))
            services.append(
                {
                    "name": name,
                    "kind": kind,
                    "container_id": container.id,
                    "port": port,
                    "health_check_url": url,
                    "status": status,
                }
            )
        self.counts.services = len(await self.create_all("service", services))

        gpus = []
        serials: set[str] = set()
        gpu_servers = [
            (site, server)
            for (site, role, _), server in zip(planned, servers, strict=True)
            if role == "gpu"
        ]
        by_site: dict[str, int] = {}
        for site, server in gpu_servers:
            index = by_site.get(site.code, 0)
            by_site[site.code] = index + 1
            key, how_many = site.gpus[index]
            model, memory = GPU_MODELS[key]
            for _ in range(how_many):
                serial = str(self.random.randrange(1_320_000_000_000, 1_660_000_000_000))
                while serial in serials:
                    serial = str(int(serial) + 1)
                serials.add(serial)
                gpus.append(
                    {"model": model, "serial": serial, "memory_gb": memory, "server_id": server.id}
                )
        rows = await self.create_all("gpu", gpus)
        self.counts.gpus = len(rows)
        return [(row.id, row.serial) for row in rows]

    # -- people and holds ----------------------------------------------------------------------

    async def user(self, username: str) -> User:
        """A demo user, made if missing (an existing account is used as it is)."""
        identity = self.services.identity
        async with identity.db.read() as session:
            user = await get_user_by_username(session, username)
        if user is None:
            user = await identity.create_user(
                self.admin, username, f"{username}@{DOMAIN}", DEMO_PASSWORD, Role.USER
            )
            self.counts.users += 1
        return user

    async def users(self) -> list[User]:
        """The demo users that can hold things (password hashes are made side by side)."""
        made = await _bounded((self.user(name) for name in DEMO_USERS), len(DEMO_USERS))
        return [user for user in made if user.active]

    async def holds(self, gpus: list[tuple[int, str]], people: list[User]) -> None:
        """About a quarter of the GPUs held: most claimed by their holder, some assigned by the
        admin, some with a due-back time; then their start moved into the past, and one made
        overdue."""
        if not people:
            return
        holds = self.services.gpus
        now = utcnow()
        chosen = self.random.sample(gpus, k=max(1, len(gpus) // 4))
        started = {}
        for index, (gpu_id, _serial) in enumerate(chosen):
            person = people[index % len(people)]
            due = None
            if self.random.random() < 0.6:
                due = now + timedelta(
                    days=self.random.randint(1, 14), hours=self.random.randint(0, 23)
                )
            if index % 4 == 3:
                await holds.assign(self.admin, gpu_id, person.username, due)
            else:
                await holds.claim(person, gpu_id, due)
            started[gpu_id] = now - timedelta(hours=self.random.randint(1, 20 * 24))
        overdue = chosen[0][0]
        started[overdue] = now - timedelta(days=9)
        async with self.services.assets.db.transaction() as session:
            rows = await session.scalars(select(GpuHold).where(GpuHold.gpu_id.in_(started)))
            for hold in rows:
                hold.since = started[hold.gpu_id]
                if hold.gpu_id == overdue:
                    hold.due_back = now - timedelta(days=2)
        self.counts.held = len(chosen)
        self.counts.overdue = 1

    async def fill(self) -> Counts:
        if (await self.assets.servers(first=0)).total:
            raise AlreadyFilled
        gpus = await self.inventory()
        await self.holds(gpus, await self.users())
        return self.counts


async def demo_data(settings, seed: int | None = None) -> str:
    """Fill the database of these settings (migrated first); the one-line summary."""
    from server.app import running_services

    started = time.monotonic()
    async with running_services(settings.replace(migrate_on_start=True), run_jobs=False) as (
        db,
        _bus,
        services,
    ):
        async with db.read() as session:
            admin = await get_user_by_username(session, settings.admin_username)
        if admin is None or not admin.active or not is_admin(admin):
            raise LookupError(
                f"there is no active admin {settings.admin_username!r} (HOLDFAST_ADMIN_USERNAME)"
            )
        counts = await DemoData(services, admin, SEED if seed is None else seed).fill()
    return counts.summary(time.monotonic() - started)
