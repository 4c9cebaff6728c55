"""Stored files, and downloads: short-lived links that need no other credential.

A `Download` is made when someone who may read the file asks for it (the area that owns the
file checks that, e.g. a job's creator or an admin): a new random token each time, valid for
`link_ttl`, kept only as its SHA-256 digest. Every area stores its files here (exports, uploads
a job reads later, parts' STEP files) and serves them through the one `/downloads/` route.

A file's bytes are kept in the database (`store(..., data=bytes)`), or, for large files kept
for good, in the blob storage (domain/storage.py): `async with files.blob(data, prefix) as kept:`
writes them under a fresh key before the transaction that stores the row
(`store(..., data=kept)`), and deletes them again if that block fails. Deleting a file whose
bytes are in storage (`forget`, `delete`, the purge of expired files) queues a `delete-blobs`
job in the deleting transaction, so the bytes go exactly when the row did, even across crashes.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from db import files as store
from db.base import utcnow
from db.engine import Database
from db.files import DownloadLink, StoredFile
from domain.errors import NotFound
from domain.storage import Blob, BlobMissing, Storage, new_key

if TYPE_CHECKING:
    from domain.jobs import Jobs

logger = logging.getLogger("holdfast.files")

DOWNLOAD_PATH = "/downloads/"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DELETE_BLOBS = "delete-blobs"
"""The job kind that removes the bytes of deleted files from the storage."""


class LinkExpired(NotFound):
    """The link existed and ran out (HTTP 410)."""


@dataclass(frozen=True)
class Download:
    url: str
    filename: str
    expires_at: datetime


@dataclass(frozen=True)
class Kept:
    """Bytes written to the storage, for `Files.store` to record."""

    key: str
    size: int


@dataclass(frozen=True)
class FetchedFile:
    filename: str
    content_type: str
    data: bytes | None
    """The bytes of a file kept in the database; None for one in storage (`blob`)."""
    blob: Blob | None = None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Files:
    def __init__(
        self,
        db: Database,
        *,
        link_ttl: timedelta = timedelta(minutes=15),
        retention: timedelta = timedelta(days=1),
        public_url: str | None = None,
        storage: Storage | None = None,
        jobs: Jobs | None = None,
    ) -> None:
        self.db = db
        self.storage = storage
        """Where large files' bytes live (None: only the database is used)."""
        self.jobs = jobs
        if jobs is not None:
            jobs.handle(DELETE_BLOBS, self._delete_blobs)
        self.link_ttl = link_ttl
        self.retention = retention
        """How long files kept for a while (a job's output or input) live by default."""
        self.public_url = public_url.rstrip("/") if public_url else None

    async def store(
        self,
        session: AsyncSession,
        *,
        filename: str,
        content_type: str,
        data: bytes | Kept,
        created_by: int | None,
        keep_for: timedelta | None = None,
        forever: bool = False,
    ) -> int:
        """Keep a file, in the caller's transaction, for `keep_for` (default `retention`), or
        until it is deleted when `forever`. `data` is the bytes (kept in the database) or what
        `blob` wrote to the storage. Returns its id."""
        now = utcnow()
        in_storage = isinstance(data, Kept)
        row = StoredFile(
            filename=filename[:255],
            content_type=content_type,
            size=data.size if in_storage else len(data),
            data=None if in_storage else data,
            storage_key=data.key if in_storage else None,
            created_by=created_by,
            created_at=now,
            expires_at=None if forever else now + (keep_for or self.retention),
        )
        session.add(row)
        await session.flush()
        return row.id

    @asynccontextmanager
    async def blob(self, data: bytes, prefix: str) -> AsyncIterator[Kept]:
        """Write `data` to the storage under a fresh key beginning with `prefix`; the block
        stores the row that names it. If the block raises, the bytes are deleted again."""
        storage = self._storage()
        kept = Kept(new_key(prefix), len(data))
        await storage.put(kept.key, data)
        try:
            yield kept
        except BaseException:
            try:
                await storage.delete(kept.key)
            except Exception:
                logger.exception("could not delete the unused blob %s", kept.key)
            raise

    def _storage(self) -> Storage:
        if self.storage is None:
            raise RuntimeError("this Files has no storage for large files")
        return self.storage

    async def data(self, file_id: int) -> bytes:
        async with self.db.read() as session:
            found = await store.file_data(session, file_id)
        if found is None:
            raise NotFound(f"the file {file_id} is gone (files are kept for a limited time)")
        data, key = found
        if key is not None:
            return await (await self._storage().open(key)).read()
        return data or b""

    async def delete(self, file_id: int) -> None:
        async with self.db.transaction() as session:
            await self.forget(session, [file_id])

    async def forget(self, session: AsyncSession, file_ids: list[int]) -> None:
        """Delete these files and their links in the caller's transaction; bytes in storage
        go by a job that commits with it."""
        await self._discard(session, await store.delete_files(session, file_ids))

    async def _discard(self, session: AsyncSession, keys: list[str]) -> None:
        if not keys:
            return
        if self.jobs is None:
            raise RuntimeError("this Files has no job system to delete stored bytes with")
        await self.jobs.enqueue(DELETE_BLOBS, {"keys": keys}, session=session)

    async def _delete_blobs(self, payload: dict[str, Any]) -> None:
        storage = self._storage()
        for key in payload.get("keys", []):
            await storage.delete(key)

    async def link(self, file_id: int) -> Download | None:
        """A fresh link to the file, or None when it no longer exists. The caller decides
        who may have one."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        async with self.db.transaction() as session:
            row = await session.get(StoredFile, file_id)
            if row is None or (row.expires_at is not None and row.expires_at <= now):
                return None
            expires_at = now + self.link_ttl
            if row.expires_at is not None:
                expires_at = min(expires_at, row.expires_at)
            session.add(
                DownloadLink(token_hash=token_digest(token), file_id=row.id, expires_at=expires_at)
            )
            filename = row.filename
        return Download(self.url_of(token), filename, expires_at)

    def url_of(self, token: str) -> str:
        path = DOWNLOAD_PATH + token
        return f"{self.public_url}{path}" if self.public_url else path

    async def fetch(self, token: str) -> FetchedFile:
        """What a link points at; NotFound for an unknown token, LinkExpired for a late one."""
        now = utcnow()
        async with self.db.read() as session:
            found = await store.linked_file(session, token_digest(token))
        if found is None:
            raise NotFound("this download link is unknown (or expired long ago)")
        link, row = found
        expired_at = min(link.expires_at, row.expires_at or link.expires_at)
        if expired_at <= now:
            raise LinkExpired(
                f"this download link expired at {expired_at:%Y-%m-%d %H:%M:%S} UTC:"
                " ask for a new one (e.g. query the job again)"
            )
        if row.storage_key is None:
            return FetchedFile(row.filename, row.content_type, row.data or b"")
        try:
            blob = await self._storage().open(row.storage_key)
        except BlobMissing:
            raise NotFound("the file of this download link is gone") from None
        return FetchedFile(row.filename, row.content_type, None, blob)

    async def purge_expired(self) -> int:
        """Delete files and links past their time (a periodic job)."""
        async with self.db.transaction() as session:
            count, keys = await store.delete_expired(session, utcnow())
            await self._discard(session, keys)
        return count
