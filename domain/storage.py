"""Where the bytes of large stored files live: one small interface, keyed by name.

`Storage` is all the rest of the code knows: `put(key, data)`, `open(key)` (a `Blob` to read
whole or in chunks; `BlobMissing` when there is none) and `delete(key)` (idempotent). Keys are
made by `new_key(prefix)`: random, never reused, made of `[a-z0-9_-]` and `/`.

`LocalStorage` keeps each blob as a file under a directory (the `data_dir` setting). A put
writes a temporary file in the blob's own directory, flushes it to disk and renames it into
place, so a reader sees the whole blob or none, and a crash leaves no half-written blob under
its key (only a `*.tmp` file, which `put` never reuses). Every file operation runs in a worker
thread, off the event loop. With several replicas the directory must be one they share (a
network filesystem); an object store (S3 and the like) can implement the same three calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, Protocol

from domain.errors import NotFound

CHUNK_SIZE = 256 * 1024
_KEY = re.compile(r"^[a-z0-9_-]+(/[a-z0-9_-]+)*$")


class BlobMissing(NotFound):
    """No blob under this key (deleted, or never written)."""


def new_key(prefix: str) -> str:
    """A fresh key under `prefix`, e.g. `parts/3f/3f9c…`: sharded so no directory grows huge."""
    token = secrets.token_hex(16)
    return f"{prefix}/{token[:2]}/{token}"


def checked_key(key: str) -> str:
    if not _KEY.match(key) or len(key) > 255:
        raise ValueError(f"not a storage key: {key!r}")
    return key


class Blob(Protocol):
    size: int

    def chunks(self) -> AsyncIterator[bytes]:
        """The bytes in order, in pieces of a few hundred KiB."""
        ...

    async def read(self) -> bytes:
        """The whole blob."""
        ...


class Storage(Protocol):
    async def put(self, key: str, data: bytes) -> None:
        """Keep `data` under `key`, whole or not at all."""
        ...

    async def open(self, key: str) -> Blob:
        """The blob under `key`; BlobMissing when there is none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob under `key`; nothing happens when there is none."""
        ...


class LocalBlob:
    """A blob file opened for reading; the file is closed once read to the end (or the
    iteration is abandoned)."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._handle = handle
        self.size = size

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while True:
                chunk = await asyncio.to_thread(self._handle.read, CHUNK_SIZE)
                if not chunk:
                    return
                yield chunk
        finally:
            self._handle.close()

    async def read(self) -> bytes:
        try:
            return await asyncio.to_thread(self._handle.read)
        finally:
            self._handle.close()


class LocalStorage:
    """Blobs as files under `root` (made when the first blob is written)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path_of(self, key: str) -> Path:
        return self.root / checked_key(key)

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, self.path_of(key), data)

    @staticmethod
    def _put(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            with temporary.open("xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        with contextlib.suppress(OSError):  # the rename itself survives a crash
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    async def open(self, key: str) -> LocalBlob:
        path = self.path_of(key)

        def opened() -> LocalBlob:
            try:
                handle = path.open("rb")
            except FileNotFoundError:
                raise BlobMissing(f"the stored file {key} is gone") from None
            return LocalBlob(handle, os.fstat(handle.fileno()).st_size)

        return await asyncio.to_thread(opened)

    async def delete(self, key: str) -> None:
        path = self.path_of(key)
        await asyncio.to_thread(path.unlink, missing_ok=True)
