"""The IT inventory as a workbook: export and import mutations (background jobs)."""

from __future__ import annotations

import strawberry
from strawberry.file_uploads import Upload
from strawberry.types import Info

from graph.context import Context
from graph.jobs import Job
from graph.uploads import read_upload


@strawberry.type
class AssetWorkbookMutation:
    @strawberry.mutation(
        description="An .xlsx workbook, a sheet per kind; the job's download holds it."
    )
    async def export_assets(self, info: Info[Context, None]) -> Job:
        actor = await info.context.require_viewer()
        return Job.of(await info.context.services.asset_workbook.start_export(actor))

    @strawberry.mutation(
        description="The same workbook format; all or nothing; the job's importResult reports."
    )
    async def import_assets(
        self, info: Info[Context, None], file: Upload, dry_run: bool | None = False
    ) -> Job:
        actor = await info.context.require_viewer()
        uploaded = await read_upload(file)
        job = await info.context.services.asset_workbook.start_import(
            actor, uploaded.data, uploaded.filename, dry_run=bool(dry_run)
        )
        return Job.of(job)
