"""Changing the inventory: create, update and delete every kind of asset, as admins.

Each write is one transaction: the checks of records.py, references resolved (a server's
datacenter must exist), the row written, and its audit entry beside it. The database decides
duplicates (unique constraints) and lost updates (the row's version in the UPDATE's WHERE):
either answers CONFLICT naming the field, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from db import assets as store
from db.assets import Container, Datacenter, Environment, Gpu, PortMapping, Server, Service
from db.engine import Database
from db.identity import User
from domain import audit
from domain.access import require_admin
from domain.assets.records import KINDS, describe
from domain.checks import Kind, camel, invalid
from domain.errors import BadUserInput, Conflict, NotFound

ReleaseHeld = Callable[[AsyncSession, list[int], User, str], Awaitable[Callable[[], Awaitable]]]
"""Force-release the holds on these GPUs inside the caller's transaction (before they are
deleted); returns what publishes the events after commit."""


def _conflict_field(kind: Kind, error: IntegrityError) -> str | None:
    message = str(error.orig)
    for constraint, field in kind.unique.items():
        if constraint in message:
            return field
    return None


class Inventory:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.release_held: ReleaseHeld | None = None
        """Set by the GPU holds: deleting a held GPU releases it on the hold engine first."""

    # -- create and update --------------------------------------------------------------------

    async def create(self, actor: User, kind_name: str, values: dict[str, Any]):
        require_admin(actor)
        kind = KINDS[kind_name]
        checked = kind.checked(values, creating=True)
        async with self.db.transaction() as session:
            row = kind.model()
            extra = await self._apply(session, kind, row, checked)
            await self._flush(session, kind, row, add=True)
            after = await self._save_extra(session, kind, row, extra)
            audit.record(
                session,
                actor=actor,
                action="create",
                resource_type=kind.name,
                resource_id=row.id,
                after=after,
            )
        return row

    async def update(
        self,
        actor: User,
        kind_name: str,
        row_id: int,
        values: dict[str, Any],
        version: int | None = None,
    ):
        """Change the fields given; with `version`, only if the row is still that version
        (else CONFLICT carrying the current values)."""
        require_admin(actor)
        kind = KINDS[kind_name]
        checked = kind.checked(values, creating=False)
        try:
            async with self.db.transaction() as session:
                row = await self._find(session, kind, row_id, for_update=True)
                before = await self._described(session, kind, row)
                if version is not None and version != row.version:
                    raise self._stale(kind, before)
                extra = await self._apply(session, kind, row, checked)
                await self._flush(session, kind, row)
                after = await self._save_extra(session, kind, row, extra, replace=True)
                if {k: v for k, v in after.items() if k != "version"} != {
                    k: v for k, v in before.items() if k != "version"
                }:
                    if row.version == before["version"]:
                        row.version += 1
                        await session.flush()
                    after["version"] = row.version
                    audit.record(
                        session,
                        actor=actor,
                        action="update",
                        resource_type=kind.name,
                        resource_id=row.id,
                        before=before,
                        after=after,
                    )
        except StaleDataError:
            async with self.db.read() as session:
                current = await self._find(session, kind, row_id)
                raise self._stale(kind, await self._described(session, kind, current)) from None
        return row

    def _stale(self, kind: Kind, current: dict[str, Any]) -> Conflict:
        return Conflict(
            f"this {kind.name} was changed by someone else (it is now version "
            f"{current['version']}): read it again and reapply your change",
            field="version",
            current=current,
        )

    async def _find(self, session: AsyncSession, kind: Kind, row_id: int, *, for_update=False):
        row = await store.get(session, kind.model, row_id, for_update=for_update)
        if row is None:
            raise NotFound(f"no {kind.name} with id {row_id}", field="id")
        return row

    async def _described(self, session: AsyncSession, kind: Kind, row) -> dict[str, Any]:
        if kind.model is Server:
            return describe(kind.name, row, tags=(await store.tags_of(session, [row.id]))[row.id])
        if kind.model is Container:
            ports = (await store.ports_of(session, [row.id]))[row.id]
            return describe(kind.name, row, ports=ports)
        return describe(kind.name, row)

    async def _apply(self, session: AsyncSession, kind: Kind, row, checked: dict[str, Any]):
        """Set the row's columns from checked values, resolving references; returns what is
        stored beside the row (a server's tags, a container's ports)."""
        extra: dict[str, Any] = {}
        for name, value in checked.items():
            if name in ("tags", "ports"):
                extra[name] = value
            elif name == "environment":
                row.environment_id = await self._environment_id(session, value)
            elif name in ("datacenter_id", "server_id", "container_id"):
                await self._must_exist(session, name, value)
                setattr(row, name, value)
            else:
                setattr(row, name, value)
        moved = kind.model is Container and "server_id" in checked and row.id is not None
        if moved and "ports" not in extra:
            extra["ports"] = [
                {
                    "host_port": p.host_port,
                    "container_port": p.container_port,
                    "protocol": p.protocol,
                }
                for p in (await store.ports_of(session, [row.id]))[row.id]
            ]
        return extra

    async def _environment_id(self, session: AsyncSession, name: str | None) -> int | None:
        if name is None:
            return None
        environment = await store.by_name(session, Environment, name)
        if environment is None:
            raise invalid("environment", f"there is no environment named {name!r}")
        return environment.id

    async def _must_exist(self, session: AsyncSession, name: str, row_id: int | None) -> None:
        if row_id is None:
            return
        model = {"datacenter_id": Datacenter, "server_id": Server, "container_id": Container}[name]
        if await store.get(session, model, row_id) is None:
            raise invalid(name, f"there is no {model.__tablename__[:-1]} with id {row_id}")

    async def _flush(self, session: AsyncSession, kind: Kind, row, *, add: bool = False) -> None:
        if add:
            session.add(row)
        try:
            await session.flush()
        except IntegrityError as error:
            field = _conflict_field(kind, error)
            if field is None:
                raise
            raise Conflict(
                f"a {kind.name} with this {camel(field)} already exists", field=camel(field)
            ) from None

    async def _save_extra(
        self, session: AsyncSession, kind: Kind, row, extra: dict, *, replace: bool = False
    ) -> dict[str, Any]:
        """Store tags or ports; the row as it now reads."""
        if kind.model is Server:
            if "tags" in extra:
                await store.replace_tags(session, row.id, extra["tags"])
            return await self._described(session, kind, row)
        if kind.model is Container:
            if "ports" in extra:
                try:
                    await store.replace_ports(session, row.id, row.server_id, extra["ports"])
                except IntegrityError as error:
                    if _conflict_field(kind, error) != "ports":
                        raise
                    raise Conflict(
                        "ports: a host port and protocol given is already published on this server",
                        field="ports",
                    ) from None
            return await self._described(session, kind, row)
        return describe(kind.name, row)

    # -- delete ---------------------------------------------------------------------------------

    async def delete(self, actor: User, kind_name: str, row_id: int, *, cascade: bool = False):
        """Delete one row. A server with containers or GPUs, a container with services, a
        datacenter with servers: CONFLICT, unless `cascade` (servers and containers), which
        removes them too in the same transaction, each removal audited with its row."""
        require_admin(actor)
        kind = KINDS[kind_name]
        publish = None
        async with self.db.transaction() as session:
            row = await self._find(session, kind, row_id, for_update=True)
            plan = await self._removal(session, kind, row, cascade)
            held = [gpu.id for kind_of, gpu in plan if kind_of == "gpu"]
            if held and self.release_held is not None:
                publish = await self.release_held(
                    session, held, actor, f"its {kind.name} {_label(row)} was deleted"
                )
            for kind_of, victim in plan:
                snapshot = await self._described(session, KINDS[kind_of], victim)
                audit.record(
                    session,
                    actor=actor,
                    action="delete",
                    resource_type=kind_of,
                    resource_id=victim.id,
                    before=snapshot,
                )
                await store.remove(session, victim)
        if publish is not None:
            await publish()
        return row

    async def _removal(self, session: AsyncSession, kind: Kind, row, cascade: bool) -> list:
        """(kind, row) to delete, children first."""
        if kind.model is Datacenter:
            servers = await store.children(session, Server, Server.datacenter_id, [row.id])
            if servers:
                raise Conflict(
                    f"the datacenter {row.name!r} still has {len(servers)} server(s): delete "
                    "or move them first",
                    field="id",
                    servers=len(servers),
                )
            return [("datacenter", row)]
        if kind.model is Server:
            containers = await store.children(session, Container, Container.server_id, [row.id])
            gpus = await store.children(session, Gpu, Gpu.server_id, [row.id])
            if (containers or gpus) and not cascade:
                raise Conflict(
                    f"the server {row.name!r} still has {len(containers)} container(s) and "
                    f"{len(gpus)} GPU(s): delete them first, or delete with cascade",
                    field="cascade",
                    containers=len(containers),
                    gpus=len(gpus),
                )
            services = await store.children(
                session, Service, Service.container_id, [c.id for c in containers]
            )
            return [
                *(("service", s) for s in services),
                *(("container", c) for c in containers),
                *(("gpu", g) for g in gpus),
                ("server", row),
            ]
        if kind.model is Container:
            services = await store.children(session, Service, Service.container_id, [row.id])
            if services and not cascade:
                raise Conflict(
                    f"the container {row.name!r} still has {len(services)} service(s): delete "
                    "them first, or delete with cascade",
                    field="cascade",
                    services=len(services),
                )
            return [*(("service", s) for s in services), ("container", row)]
        if cascade:
            raise BadUserInput(f"cascade does not apply to a {kind.name}", field="cascade")
        return [(kind.name, row)]


def _label(row) -> str:
    return repr(getattr(row, "name", None) or getattr(row, "serial", None) or row.id)


__all__ = ["Inventory", "PortMapping"]
