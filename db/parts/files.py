"""Files uploaded to parts (STEP, PDF, GLB, STL) and, for a STEP file, its 3D model.

The bytes are stored files (db/files.py, kept in the blob storage) so downloads take the one
`/downloads/` path; a row here says whose part the file is, what it is and how its conversion
went. Deleting a part's files is the caller's to do before the part (the foreign key has no
cascade, so a forgotten file stops the delete instead of leaving bytes behind).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, utcnow
from db.files import StoredFile


class PartFile(Base):
    __tablename__ = "part_files"
    __table_args__ = (Index("ix_part_files_part_id", "part_id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("parts.id"))
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"))
    """The original, as uploaded (name, size, content type and storage key are there)."""
    kind: Mapped[str] = mapped_column(String(8))
    """STEP, PDF, GLB or STL, from the content."""
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    model_status: Mapped[str | None] = mapped_column(String(8))
    """A STEP file's conversion: PENDING, READY or FAILED; None for other kinds."""
    model_error: Mapped[str | None] = mapped_column(Text)
    model_file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id"))
    """The GLB made from a STEP file, once READY."""


async def get(session: AsyncSession, part_file_id: int) -> PartFile | None:
    return await session.get(PartFile, part_file_id)


async def with_files(session: AsyncSession, part_file_id: int):
    """(the part file, its original's stored file) or None."""
    query = (
        select(PartFile, StoredFile)
        .join(StoredFile, StoredFile.id == PartFile.file_id)
        .where(PartFile.id == part_file_id)
    )
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def of_parts(session: AsyncSession, part_ids: list[int]) -> list[tuple[PartFile, StoredFile]]:
    """Every file of these parts with its original's stored file, oldest first."""
    if not part_ids:
        return []
    query = (
        select(PartFile, StoredFile)
        .join(StoredFile, StoredFile.id == PartFile.file_id)
        .where(PartFile.part_id.in_(part_ids))
        .order_by(PartFile.uploaded_at, PartFile.id)
    )
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


async def set_model(
    session: AsyncSession,
    part_file_id: int,
    *,
    status: str,
    error: str | None = None,
    model_file_id: int | None = None,
) -> bool:
    """Record how a conversion went, if the file is still there and still PENDING."""
    result = await session.execute(
        update(PartFile)
        .where(PartFile.id == part_file_id, PartFile.model_status == "PENDING")
        .values(model_status=status, model_error=error, model_file_id=model_file_id)
    )
    return result.rowcount == 1


async def delete_rows(session: AsyncSession, part_file_ids: list[int]) -> list[int]:
    """Delete these part files; returns the ids of the stored files they used (original and
    model), for the caller to delete in the same transaction."""
    if not part_file_ids:
        return []
    query = select(PartFile.file_id, PartFile.model_file_id).where(PartFile.id.in_(part_file_ids))
    stored = [
        file_id
        for row in (await session.execute(query)).all()
        for file_id in row
        if file_id is not None
    ]
    await session.execute(delete(PartFile).where(PartFile.id.in_(part_file_ids)))
    return stored


async def ids_of_parts(session: AsyncSession, part_ids: list[int]) -> list[int]:
    if not part_ids:
        return []
    query = select(PartFile.id).where(PartFile.part_id.in_(part_ids))
    return list((await session.execute(query)).scalars())
