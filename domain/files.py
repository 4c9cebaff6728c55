"""Files kept in the database, and downloads: short-lived links that need no other credential.

A `Download` is made when someone who may read the file asks for it (the area that owns the
file checks that, e.g. a job's creator or an admin): a new random token each time, valid for
`link_ttl`, kept only as its SHA-256 digest. Every area stores its files here (exports, uploads
a job reads later, parts' STEP files) and serves them through the one `/downloads/` route.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from db import files as store
from db.base import utcnow
from db.engine import Database
from db.files import DownloadLink, StoredFile
from domain.errors import NotFound

DOWNLOAD_PATH = "/downloads/"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class LinkExpired(NotFound):
    """The link existed and ran out (HTTP 410)."""


@dataclass(frozen=True)
class Download:
    url: str
    filename: str
    expires_at: datetime


@dataclass(frozen=True)
class FetchedFile:
    filename: str
    content_type: str
    data: bytes


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
    ) -> None:
        self.db = db
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
        data: bytes,
        created_by: int | None,
        keep_for: timedelta | None = None,
        forever: bool = False,
    ) -> int:
        """Keep a file, in the caller's transaction, for `keep_for` (default `retention`), or
        until it is deleted when `forever`. Returns its id."""
        now = utcnow()
        row = StoredFile(
            filename=filename[:255],
            content_type=content_type,
            size=len(data),
            data=data,
            created_by=created_by,
            created_at=now,
            expires_at=None if forever else now + (keep_for or self.retention),
        )
        session.add(row)
        await session.flush()
        return row.id

    async def data(self, file_id: int) -> bytes:
        async with self.db.read() as session:
            data = await store.file_data(session, file_id)
        if data is None:
            raise NotFound(f"the file {file_id} is gone (files are kept for a limited time)")
        return data

    async def delete(self, file_id: int) -> None:
        async with self.db.transaction() as session:
            await store.delete_file(session, file_id)

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
        return FetchedFile(row.filename, row.content_type, row.data)

    async def purge_expired(self) -> int:
        """Delete files and links past their time (a periodic job)."""
        async with self.db.transaction() as session:
            return await store.delete_expired(session, utcnow())
