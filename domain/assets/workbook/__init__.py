"""The IT inventory as an .xlsx workbook: exported by a job, imported back by a job, all or
nothing.

One sheet per kind, in this order, each with a header row of exactly these columns:

- Datacenters: name, location, description
- Environments: name, color
- Servers: name, hostname, management_ip, public_ip, cpu_cores, memory_gb, disk_gb, os, status,
  datacenter, environment, notes, tags (comma-separated)
- Containers: server, name, image, cpu_limit, memory_limit_mb, ports ("8080:80/tcp,
  5353:53/udp"), status, environment
- Services: server, container, name, kind, port, health_check_url, status
- GPUs: serial, model, memory_gb, server

A row names what it refers to (its datacenter, server, container, environment), and is matched
to the inventory by its natural key: a datacenter's or environment's name, a server's name,
(server, container name), (server, container, service name), a GPU's serial. GPU holds (who has
a GPU, since when, until when) are live state, not inventory: the workbook leaves them out and
an import never changes them.

An import reads every row of every sheet with the checks the API's writes run (records.py),
each problem named by sheet, row and column; with any problem nothing is written. Otherwise it
creates and updates rows by natural key in one transaction, a few statements per table, with an
audit entry for every row it creates or changes, like the API's writes. A row is the whole
truth about its asset: an empty cell clears that field. Assets the workbook does not name are
left alone; an import never deletes. A dry run counts what it would create, update and leave
unchanged, and writes nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.engine import Database
from db.identity import User
from db.jobs import Job
from domain import workbooks
from domain.access import require_admin
from domain.assets.workbook.importing import Plan, Writer, plan
from domain.assets.workbook.sheets import SHEETS, SPECS, load, sheets_of
from domain.errors import Conflict, Forbidden
from domain.files import XLSX
from domain.jobs import JobContext
from domain.transfers import ExportFile, ImportResult, Transfers
from domain.workbooks import ImportProblem

__all__ = ["EXPORT_JOB", "IMPORT_JOB", "SHEETS", "AssetWorkbook"]

EXPORT_JOB = "assets-export"
IMPORT_JOB = "assets-import"


class AssetWorkbook:
    def __init__(self, db: Database, transfers: Transfers) -> None:
        self.db = db
        self.transfers = transfers
        transfers.exporter(EXPORT_JOB, self._export)
        transfers.importer(IMPORT_JOB, self._import)

    async def start_export(self, actor: User) -> Job:
        """Admins: a job whose download is the whole inventory as a workbook."""
        require_admin(actor)
        return await self.transfers.start_export(actor, EXPORT_JOB)

    async def start_import(
        self, actor: User, data: bytes, filename: str, *, dry_run: bool = False
    ) -> Job:
        """Admins: a job that imports this workbook (or, `dry_run`, says what it would do).
        What is plainly not an .xlsx workbook is refused at once."""
        require_admin(actor)
        workbooks.check_archive(data)
        return await self.transfers.start_import(
            actor, IMPORT_JOB, data, filename, {"dry_run": dry_run}, content_type=XLSX
        )

    async def _export(self, payload: dict[str, Any], context: JobContext) -> ExportFile:
        async with self.db.read() as session:
            stored = await load(session)
        await context.report(0.4)
        data = await asyncio.to_thread(workbooks.write_workbook, sheets_of(stored))
        return ExportFile(f"holdfast-assets-{utcnow():%Y%m%d-%H%M%S}.xlsx", XLSX, data)

    async def _import(
        self, data: bytes, payload: dict[str, Any], context: JobContext
    ) -> ImportResult:
        dry_run = bool(payload.get("dry_run"))
        read = await asyncio.to_thread(workbooks.read_workbook, data, SPECS)
        # The rest is one transaction: on SQLite it holds the write lock that a progress
        # report would wait for, so the next report is the job's end.
        await context.report(0.3)
        if dry_run:
            async with self.db.read() as session:
                await _admin(session, context)
                stored = await load(session)
                planned, problems = await asyncio.to_thread(plan, read, stored)
            return _result(True, planned, problems)
        try:
            async with self.db.transaction() as session:
                actor = await _admin(session, context)
                stored = await load(session)
                planned, problems = await asyncio.to_thread(plan, read, stored)
                if planned is not None:
                    await Writer(session, actor, stored, planned).write()
        except IntegrityError:
            raise Conflict(
                "the inventory changed while the workbook was imported: nothing was written;"
                " import it again"
            ) from None
        return _result(False, planned, problems)


async def _admin(session: AsyncSession, context: JobContext) -> User:
    actor = None if context.created_by is None else await session.get(User, context.created_by)
    if actor is None or not actor.active:
        raise Forbidden("the admin who started the import is gone")
    require_admin(actor)
    return actor


def _result(dry_run: bool, planned: Plan | None, problems: list[ImportProblem]) -> ImportResult:
    if planned is None:
        return ImportResult(dry_run=dry_run, problems=problems)
    return ImportResult(
        dry_run=dry_run,
        created=sum(len(keys) for keys in planned.create.values()),
        updated=sum(len(keys) for keys in planned.update.values()),
        unchanged=planned.unchanged,
    )
