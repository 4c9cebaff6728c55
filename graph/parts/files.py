"""Files of parts in the schema: the PartFile type, uploading (multipart) and deleting, and
`part_files(info, part_id)`, batched per request, for `Part.files`."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.file_uploads import Upload
from strawberry.types import Info

from domain.parts.files import PartFileView
from graph.context import Context, decode_id
from graph.jobs import Download
from graph.scalars import Long
from graph.uploads import read_upload


@strawberry.enum(description="Where a STEP file's conversion to a 3D model (GLB) is.")
class ConversionStatus(Enum):
    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"


@strawberry.type(description="A file uploaded to a part: STEP, PDF, GLB or STL.")
class PartFile:
    id: strawberry.ID
    filename: str
    size: Long
    content_type: str = strawberry.field(description="From the content, not the client.")
    sha256: str = strawberry.field(description="SHA-256 of the bytes, in hex.")
    uploaded_at: datetime
    model_status: ConversionStatus | None = strawberry.field(
        description="For a STEP file: PENDING until converted, then READY or FAILED."
    )
    model_error: str | None = strawberry.field(description="Why the conversion FAILED.")
    view: strawberry.Private[PartFileView]

    @strawberry.field(description="The file as uploaded: a short-lived link.")
    async def download(self, info: Info[Context, None]) -> Download:
        await info.context.require_viewer()
        return Download.of(await info.context.services.part_files.download(self.view))

    @strawberry.field(description="For a STEP file: its 3D model (GLB) once converted.")
    async def model(self, info: Info[Context, None]) -> Download | None:
        await info.context.require_viewer()
        link = await info.context.services.part_files.model(self.view)
        return None if link is None else Download.of(link)

    @classmethod
    def of(cls, view: PartFileView) -> PartFile:
        return cls(
            id=strawberry.ID(str(view.id)),
            filename=view.filename,
            size=Long(view.size),
            content_type=view.content_type,
            sha256=view.sha256,
            uploaded_at=view.uploaded_at,
            model_status=None if view.model_status is None else ConversionStatus(view.model_status),
            model_error=view.model_error,
            view=view,
        )


def _loader(info: Info[Context, None]) -> DataLoader:
    """This request's loader of files by part id; a websocket's context outlives its
    operations, so there it batches but does not cache."""
    context = info.context
    found = context.loaders.get("part_files")
    if found is None:
        part_files = context.services.part_files

        async def batch(part_ids: list[int]) -> list[list[PartFileView]]:
            by_part = await part_files.of_parts(list(part_ids))
            return [by_part.get(part_id, []) for part_id in part_ids]

        found = context.loaders["part_files"] = DataLoader(batch, cache=not context.long_lived)
    return found


async def part_files(info: Info[Context, None], part_id: int) -> list[PartFile]:
    """The files of a part, oldest first: one query for every part of the request."""
    return [PartFile.of(view) for view in await _loader(info).load(part_id)]


@strawberry.type
class PartFileQuery:
    @strawberry.field(description="One part's file, e.g. to poll its modelStatus.")
    async def part_file(self, info: Info[Context, None], id: strawberry.ID) -> PartFile:
        await info.context.require_viewer()
        return PartFile.of(await info.context.services.part_files.get(decode_id(id)))


@strawberry.type
class PartFileMutation:
    @strawberry.mutation(
        description="Upload a STEP (.step, .stp), PDF, GLB or STL file to a part (a multipart"
        " request); a STEP file is converted to a 3D model in the background (modelStatus)."
    )
    async def upload_part_file(
        self, info: Info[Context, None], part_id: strawberry.ID, file: Upload
    ) -> PartFile:
        actor = await info.context.require_viewer()
        part = decode_id(part_id, "partId")
        uploaded = await read_upload(file)
        view = await info.context.services.part_files.upload(
            actor, part, uploaded.filename, uploaded.data
        )
        return PartFile.of(view)

    @strawberry.mutation(description="Admins: delete a part's file (and its 3D model).")
    async def delete_part_file(self, info: Info[Context, None], id: strawberry.ID) -> strawberry.ID:
        actor = await info.context.require_viewer()
        view = await info.context.services.part_files.delete(actor, decode_id(id))
        return strawberry.ID(str(view.id))
