"""IT assets: datacenters, environments, servers, containers, services, GPUs, and GPU holds.

Every inventory row carries a `version` that SQLAlchemy bumps on each update and checks in the
UPDATE's WHERE clause, so two admins editing one row cannot both win. Unique names (a server's,
a container's on its server, a GPU's serial, a host port per protocol on a server) are unique
constraints: concurrent creates meet in the database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    case,
    delete,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from db.base import Base, insert_unless_exists, utcnow
from db.identity import User
from db.streams import HoldTable, Shown, StreamEvent

GPU_STREAM = "gpus"
"""The scope of the one stream every GPU hold is recorded on."""


class Versioned:
    """Columns every inventory row has: an optimistic-concurrency version and timestamps."""

    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict:
        return {"version_id_col": cls.__table__.c.version}


class Datacenter(Versioned, Base):
    __tablename__ = "datacenters"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    location: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)


class Environment(Versioned, Base):
    __tablename__ = "environments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    color: Mapped[str] = mapped_column(String(7))


class Server(Versioned, Base):
    __tablename__ = "servers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    hostname: Mapped[str | None] = mapped_column(String(253))
    management_ip: Mapped[str | None] = mapped_column(String(45))
    public_ip: Mapped[str | None] = mapped_column(String(45))
    cpu_cores: Mapped[int | None]
    memory_gb: Mapped[int | None]
    disk_gb: Mapped[int | None]
    os: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE", index=True)
    datacenter_id: Mapped[int] = mapped_column(ForeignKey("datacenters.id"), index=True)
    environment_id: Mapped[int | None] = mapped_column(
        ForeignKey("environments.id", ondelete="SET NULL"), index=True
    )
    notes: Mapped[str | None] = mapped_column(Text)


class ServerTag(Base):
    __tablename__ = "server_tags"

    server_id: Mapped[int] = mapped_column(
        ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(50), primary_key=True, index=True)


class Container(Versioned, Base):
    __tablename__ = "containers"
    __table_args__ = (UniqueConstraint("server_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    image: Mapped[str] = mapped_column(String(300))
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id"), index=True)
    cpu_limit: Mapped[float | None] = mapped_column(Float)
    memory_limit_mb: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16), default="RUNNING", index=True)
    environment_id: Mapped[int | None] = mapped_column(
        ForeignKey("environments.id", ondelete="SET NULL"), index=True
    )


class PortMapping(Base):
    """A container's published port; `server_id` is the container's, so that one host port
    and protocol cannot be published twice on a server, whatever the container."""

    __tablename__ = "port_mappings"
    __table_args__ = (UniqueConstraint("server_id", "host_port", "protocol"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    container_id: Mapped[int] = mapped_column(
        ForeignKey("containers.id", ondelete="CASCADE"), index=True
    )
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id"))
    host_port: Mapped[int]
    container_port: Mapped[int]
    protocol: Mapped[str] = mapped_column(String(3))
    position: Mapped[int] = mapped_column(default=0)


class Service(Versioned, Base):
    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("container_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    port: Mapped[int | None]
    health_check_url: Mapped[str | None] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(16), default="UNKNOWN")
    container_id: Mapped[int] = mapped_column(ForeignKey("containers.id"), index=True)


class Gpu(Versioned, Base):
    __tablename__ = "gpus"

    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(100))
    serial: Mapped[str] = mapped_column(String(100), unique=True)
    memory_gb: Mapped[int | None]
    server_id: Mapped[int | None] = mapped_column(ForeignKey("servers.id"), index=True)


class GpuHold(Base):
    """Who holds a GPU now: one row per held GPU (the unique gpu_id is the one holder)."""

    __tablename__ = "gpu_holds"
    __table_args__ = (UniqueConstraint("gpu_id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    gpu_id: Mapped[int] = mapped_column(ForeignKey("gpus.id", ondelete="CASCADE"))
    serial: Mapped[str] = mapped_column(String(100))
    """The GPU's serial when it was taken, so its history reads after the GPU is gone."""
    model: Mapped[str] = mapped_column(String(100))
    holder_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    since: Mapped[datetime]
    due_back: Mapped[datetime | None] = mapped_column(index=True)
    fencing_token: Mapped[int] = mapped_column(BigInteger)
    overdue_mailed_at: Mapped[datetime | None]


class GpuEvent(StreamEvent, Base):
    """One change to a GPU hold, with a snapshot of the hold."""

    __tablename__ = "gpu_events"

    gpu_hold_id: Mapped[int]
    gpu_id: Mapped[int] = mapped_column(index=True)
    serial: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(100))
    holder_id: Mapped[int] = mapped_column(index=True)
    holder_username: Mapped[str] = mapped_column(String(64))
    since: Mapped[datetime]
    due_back: Mapped[datetime | None]
    fencing_token: Mapped[int] = mapped_column(BigInteger)


GPU_HOLDS = HoldTable(
    hold=GpuHold,
    event=GpuEvent,
    hold_ref="gpu_hold_id",
    holder="holder_id",
    holder_name="holder_username",
    token="fencing_token",
    shown=Shown(
        "gpus", what=GpuHold.serial + " (" + GpuHold.model + ")", since="since", until="due_back"
    ),
)

KINDS = {
    "datacenter": Datacenter,
    "environment": Environment,
    "server": Server,
    "container": Container,
    "service": Service,
    "gpu": Gpu,
}


# -- reads --------------------------------------------------------------------------------------


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def matches(text: str, *columns) -> object:
    """Case-insensitive substring match of `text` on any of `columns`."""
    pattern = _like(text)
    return or_(*(func.lower(column).like(pattern, escape="\\") for column in columns))


SEARCHED = {
    Datacenter: (Datacenter.name, Datacenter.location),
    Environment: (Environment.name,),
    Server: (Server.name, Server.hostname, Server.management_ip, Server.public_ip),
    Container: (Container.name, Container.image),
    Service: (Service.name, Service.health_check_url),
    Gpu: (Gpu.serial, Gpu.model),
}
"""What free text searches, per kind."""


async def get(session: AsyncSession, model, row_id: int, *, for_update: bool = False):
    query = select(model).where(model.id == row_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def by_name(session: AsyncSession, model, name: str):
    return (await session.execute(select(model).where(model.name == name))).scalar_one_or_none()


async def children(session: AsyncSession, model, column, parent_ids) -> list:
    """Rows of `model` whose `column` is one of `parent_ids`, in name order."""
    if not parent_ids:
        return []
    order = model.serial if model is Gpu else model.name
    query = select(model).where(column.in_(list(parent_ids))).order_by(order, model.id)
    return list((await session.execute(query)).scalars())


async def rows_by_id(session: AsyncSession, model, ids) -> dict[int, object]:
    if not ids:
        return {}
    query = select(model).where(model.id.in_(list(ids)))
    return {row.id: row for row in (await session.execute(query)).scalars()}


async def tags_of(session: AsyncSession, server_ids) -> dict[int, list[str]]:
    tags: dict[int, list[str]] = {server_id: [] for server_id in server_ids}
    if not server_ids:
        return tags
    query = (
        select(ServerTag.server_id, ServerTag.tag)
        .where(ServerTag.server_id.in_(list(server_ids)))
        .order_by(ServerTag.tag)
    )
    for server_id, tag in (await session.execute(query)).all():
        tags[server_id].append(tag)
    return tags


async def ports_of(session: AsyncSession, container_ids) -> dict[int, list[PortMapping]]:
    ports: dict[int, list[PortMapping]] = {container_id: [] for container_id in container_ids}
    if not container_ids:
        return ports
    query = (
        select(PortMapping)
        .where(PortMapping.container_id.in_(list(container_ids)))
        .order_by(PortMapping.position, PortMapping.id)
    )
    for port in (await session.execute(query)).scalars():
        ports[port.container_id].append(port)
    return ports


async def holds_of(session: AsyncSession, gpu_ids) -> dict[int, tuple[GpuHold, User]]:
    if not gpu_ids:
        return {}
    query = (
        select(GpuHold, User)
        .join(User, User.id == GpuHold.holder_id)
        .where(GpuHold.gpu_id.in_(list(gpu_ids)))
    )
    return {hold.gpu_id: (hold, user) for hold, user in (await session.execute(query)).all()}


async def hold_of(session: AsyncSession, gpu_id: int) -> GpuHold | None:
    query = select(GpuHold).where(GpuHold.gpu_id == gpu_id)
    return (await session.execute(query)).scalar_one_or_none()


async def holds_of_user(session: AsyncSession, user_id: int) -> list[GpuHold]:
    query = select(GpuHold).where(GpuHold.holder_id == user_id).order_by(GpuHold.id)
    return list((await session.execute(query)).scalars())


async def overdue_holds(session: AsyncSession, now: datetime) -> list[GpuHold]:
    """Holds past their due-back time whose holder has not been told yet, locked."""
    query = (
        select(GpuHold)
        .where(GpuHold.due_back < now, GpuHold.overdue_mailed_at.is_(None))
        .order_by(GpuHold.id)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(query)).scalars())


def server_query(
    *,
    status: str | None = None,
    datacenter_id: int | None = None,
    environment_id: int | None = None,
    tag: str | None = None,
    text: str | None = None,
):
    query = select(Server)
    if status is not None:
        query = query.where(Server.status == status)
    if datacenter_id is not None:
        query = query.where(Server.datacenter_id == datacenter_id)
    if environment_id is not None:
        query = query.where(Server.environment_id == environment_id)
    if tag is not None:
        query = query.where(
            select(ServerTag.server_id)
            .where(ServerTag.server_id == Server.id, ServerTag.tag == tag)
            .exists()
        )
    if text:
        query = query.where(matches(text, *SEARCHED[Server]))
    return query


def container_query(
    *,
    status: str | None = None,
    server_id: int | None = None,
    environment_id: int | None = None,
    text: str | None = None,
):
    query = select(Container)
    if status is not None:
        query = query.where(Container.status == status)
    if server_id is not None:
        query = query.where(Container.server_id == server_id)
    if environment_id is not None:
        query = query.where(Container.environment_id == environment_id)
    if text:
        query = query.where(matches(text, *SEARCHED[Container]))
    return query


def service_query(
    *,
    status: str | None = None,
    kind: str | None = None,
    container_id: int | None = None,
    text: str | None = None,
):
    query = select(Service)
    if status is not None:
        query = query.where(Service.status == status)
    if kind is not None:
        query = query.where(Service.kind == kind)
    if container_id is not None:
        query = query.where(Service.container_id == container_id)
    if text:
        query = query.where(matches(text, *SEARCHED[Service]))
    return query


def gpu_query(
    *,
    free: bool | None = None,
    holder_id: int | None = None,
    server_id: int | None = None,
    datacenter_id: int | None = None,
    text: str | None = None,
):
    query = select(Gpu)
    held = select(GpuHold.id).where(GpuHold.gpu_id == Gpu.id).exists()
    if free is True:
        query = query.where(~held)
    elif free is False:
        query = query.where(held)
    if holder_id is not None:
        query = query.where(
            select(GpuHold.id)
            .where(GpuHold.gpu_id == Gpu.id, GpuHold.holder_id == holder_id)
            .exists()
        )
    if server_id is not None:
        query = query.where(Gpu.server_id == server_id)
    if datacenter_id is not None:
        query = query.where(
            Gpu.server_id.in_(select(Server.id).where(Server.datacenter_id == datacenter_id))
        )
    if text:
        query = query.where(matches(text, *SEARCHED[Gpu]))
    return query


async def search(session: AsyncSession, model, text: str, limit: int) -> list:
    """Rows of `model` matching `text`, those whose title is the text or starts with it first."""
    title = func.lower(model.serial if model is Gpu else model.name)
    wanted = text.lower()
    prefix = wanted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rank = case((title == wanted, 0), (title.like(prefix, escape="\\"), 1), else_=2)
    query = (
        select(model)
        .where(matches(text, *SEARCHED[model]))
        .order_by(rank, title, model.id)
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def every(session: AsyncSession, model) -> list:
    return list((await session.execute(select(model).order_by(model.name, model.id))).scalars())


# -- writes -------------------------------------------------------------------------------------


async def replace_tags(session: AsyncSession, server_id: int, tags: list[str]) -> None:
    await session.execute(delete(ServerTag).where(ServerTag.server_id == server_id))
    if tags:
        await session.execute(insert(ServerTag), [{"server_id": server_id, "tag": t} for t in tags])


async def replace_ports(
    session: AsyncSession, container_id: int, server_id: int, mappings: list[dict]
) -> None:
    await session.execute(delete(PortMapping).where(PortMapping.container_id == container_id))
    if mappings:
        await session.execute(
            insert(PortMapping),
            [
                {**mapping, "container_id": container_id, "server_id": server_id, "position": i}
                for i, mapping in enumerate(mappings)
            ],
        )


async def remove(session: AsyncSession, row) -> None:
    """Delete one inventory row with what hangs off it (tags, ports, holds)."""
    if isinstance(row, Server):
        await session.execute(delete(ServerTag).where(ServerTag.server_id == row.id))
    elif isinstance(row, Container):
        await session.execute(delete(PortMapping).where(PortMapping.container_id == row.id))
    elif isinstance(row, Gpu):
        await session.execute(delete(GpuHold).where(GpuHold.gpu_id == row.id))
    await session.delete(row)
    await session.flush()


async def gpu_events(
    session: AsyncSession,
    stream_id: int,
    after_seq: int,
    limit: int,
    *,
    gpu_id: int | None = None,
    user_id: int | None = None,
) -> list[GpuEvent]:
    """Events of one GPU, or naming one user (as holder or actor), with seq > after_seq."""
    query = select(GpuEvent).where(GpuEvent.stream_id == stream_id, GpuEvent.seq > after_seq)
    if gpu_id is not None:
        query = query.where(GpuEvent.gpu_id == gpu_id)
    if user_id is not None:
        query = query.where(or_(GpuEvent.holder_id == user_id, GpuEvent.actor_id == user_id))
    return list((await session.execute(query.order_by(GpuEvent.seq).limit(limit))).scalars())


async def add_environments_if_none(session: AsyncSession, environments: dict[str, str]) -> None:
    """Create these environments (name → colour) when there are none at all."""
    if (await session.execute(select(Environment.id).limit(1))).first() is not None:
        return
    now = utcnow()
    for name, color in environments.items():
        await insert_unless_exists(
            session,
            Environment,
            "name",
            name=name,
            color=color,
            version=1,
            created_at=now,
            updated_at=now,
        )
