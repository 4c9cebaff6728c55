"""Stored files (what jobs produce, what clients upload) and the short-lived links to them.

The bytes live in the database, so any replica serves any file, or, for large files kept for
good (parts' uploads), in the blob storage (domain/storage.py) under `storage_key`. A link's
token is kept only as its SHA-256 digest.
"""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, undefer

from db.base import Base


class StoredFile(Base):
    """A file kept until `expires_at` (None: until its owner deletes it)."""

    __tablename__ = "files"
    __table_args__ = (Index("ix_files_expires_at", "expires_at"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int]
    data: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    """The bytes when they live in the database; None when `storage_key` names them."""
    storage_key: Mapped[str | None] = mapped_column(String(255))
    created_by: Mapped[int | None]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]


class DownloadLink(Base):
    """`/downloads/<token>` works until `expires_at`; the token is known only to whom it was
    issued."""

    __tablename__ = "download_links"
    __table_args__ = (Index("ix_download_links_expires_at", "expires_at"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime]


async def file_data(session: AsyncSession, file_id: int) -> tuple[bytes | None, str | None] | None:
    """(the bytes, None) of a file in the database, (None, its key) of one in storage, None
    when there is no such file."""
    query = select(StoredFile.data, StoredFile.storage_key).where(StoredFile.id == file_id)
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def linked_file(
    session: AsyncSession, token_hash: str
) -> tuple[DownloadLink, StoredFile] | None:
    """The link with this digest and its file, bytes included."""
    query = (
        select(DownloadLink, StoredFile)
        .join(StoredFile, StoredFile.id == DownloadLink.file_id)
        .where(DownloadLink.token_hash == token_hash)
        .options(undefer(StoredFile.data))
    )
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def delete_files(session: AsyncSession, file_ids: list[int]) -> list[str]:
    """Delete these files and their links; returns the storage keys of those whose bytes are
    in storage (for the caller to remove once this commits)."""
    if not file_ids:
        return []
    keys = select(StoredFile.storage_key).where(
        StoredFile.id.in_(file_ids), StoredFile.storage_key.is_not(None)
    )
    found = list((await session.execute(keys)).scalars())
    await session.execute(delete(DownloadLink).where(DownloadLink.file_id.in_(file_ids)))
    await session.execute(delete(StoredFile).where(StoredFile.id.in_(file_ids)))
    return found


async def delete_file(session: AsyncSession, file_id: int) -> list[str]:
    return await delete_files(session, [file_id])


async def delete_expired(session: AsyncSession, now: datetime) -> tuple[int, list[str]]:
    """Links and files past their time; returns how many files went and the storage keys of
    those whose bytes are in storage."""
    expired_files = select(StoredFile.id).where(StoredFile.expires_at <= now)
    keys = select(StoredFile.storage_key).where(
        StoredFile.expires_at <= now, StoredFile.storage_key.is_not(None)
    )
    found = list((await session.execute(keys)).scalars())
    await session.execute(
        delete(DownloadLink).where(
            (DownloadLink.expires_at <= now) | DownloadLink.file_id.in_(expired_files)
        )
    )
    result = await session.execute(delete(StoredFile).where(StoredFile.expires_at <= now))
    return result.rowcount, found
