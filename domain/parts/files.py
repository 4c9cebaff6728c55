"""Files of parts: uploads checked by content, kept in the blob storage, and STEP files turned
into GLB models by a background job.

- **Who.** Anyone signed in uploads to a part that exists; admins delete. Both are audited
  (`resource_type="part_file"`) in the change's transaction.
- **What.** STEP (`.step`/`.stp`, starting with `ISO-10303-21;` after optional whitespace or a
  BOM), PDF (`%PDF-`), GLB (`glTF`, version 2, its declared length) and STL (binary: an 80-byte
  header and a triangle count that matches the size; ASCII: `solid`). The name's extension and
  the content must agree; anything else is BAD_USER_INPUT naming `file`. At most `max_bytes`.
- **Where.** The bytes are stored files (domain/files.py) whose bytes live in the blob storage
  (domain/storage.py), so downloads are the one `/downloads/` link mechanism; `part_files` says
  whose part each is, its kind and digest, and how its conversion went.
- **Conversion.** A STEP upload queues a `convert-step` job in the upload's transaction. The
  job runs cascadio in a child process (never on the event loop, and a crash of the native code
  cannot take the server down) with a timeout after which the child is killed. The model is
  PENDING until the job records READY (the GLB stored beside the original) or FAILED with a
  readable reason: unreadable STEP, no shape in it, too slow, the converter crashed.
- **Deleting parts.** The part's owner calls `delete_files_of_parts(session, part_ids)` in
  the transaction that deletes them (the foreign key has no cascade, so forgetting it fails
  the delete); the bytes are removed by a job that commits with it.
- **Telling others.** `when_files_change(callback)` is called with the part id after each
  committed upload, delete and conversion outcome (e.g. to announce it on the part's stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import shutil
import signal
import struct
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import parts as parts_store
from db.engine import Database
from db.files import StoredFile
from db.identity import User
from db.parts import files as store
from db.parts.files import PartFile
from domain import audit
from domain.access import require_admin
from domain.errors import BadUserInput, DomainError, NotFound
from domain.files import Download, Files
from domain.jobs import JobContext, Jobs

logger = logging.getLogger("holdfast.parts.files")

CONVERT_STEP = "convert-step"
CONVERSION_ATTEMPTS = 3
"""Tries of a conversion that failed unexpectedly (a refused file is FAILED at once)."""
STORAGE_PREFIX = "parts"
MAX_NAME_LENGTH = 255
MAX_ERROR_LENGTH = 500
LEASE_RENEWAL_SECONDS = 30.0

PENDING, READY, FAILED = "PENDING", "READY", "FAILED"


@dataclass(frozen=True)
class FileKind:
    name: str
    extensions: tuple[str, ...]
    content_type: str
    looks_like: str
    """What the content of such a file starts with, for messages."""


STEP = FileKind("STEP", (".step", ".stp"), "model/step", "starts with ISO-10303-21;")
PDF = FileKind("PDF", (".pdf",), "application/pdf", "starts with %PDF-")
GLB = FileKind("GLB", (".glb",), "model/gltf-binary", "starts with glTF, version 2")
STL = FileKind(
    "STL",
    (".stl",),
    "model/stl",
    "is binary (an 80-byte header and a triangle count that matches its size) or ASCII"
    " (starts with solid)",
)
KINDS = (STEP, PDF, GLB, STL)
BY_EXTENSION = {extension: kind for kind in KINDS for extension in kind.extensions}
ACCEPTED = "STEP (.step, .stp), PDF (.pdf), GLB (.glb) and STL (.stl)"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# -- what a file is -----------------------------------------------------------------------------


def _is_step(data: bytes) -> bool:
    head = data[:4096]
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return head.lstrip(b" \t\r\n\f\v").startswith(b"ISO-10303-21;")


def _is_glb(data: bytes) -> bool:
    if len(data) < 12 or data[:4] != b"glTF":
        return False
    version, length = struct.unpack_from("<II", data, 4)
    return version == 2 and length == len(data)


def _is_binary_stl(data: bytes) -> bool:
    if len(data) < 84:
        return False
    (count,) = struct.unpack_from("<I", data, 80)
    return len(data) == 84 + 50 * count


def _is_ascii_stl(data: bytes) -> bool:
    head = data[:4096]
    return head.lstrip(b" \t\r\n").startswith(b"solid") and b"\x00" not in head


def content_kind(data: bytes) -> FileKind | None:
    """What the bytes are, whatever the name says."""
    if _is_step(data):
        return STEP
    if data.startswith(b"%PDF-"):
        return PDF
    if _is_glb(data):
        return GLB
    if _is_binary_stl(data) or _is_ascii_stl(data):
        return STL
    return None


def clean_name(filename: str) -> str:
    """The name without any directory part or control characters."""
    name = _CONTROL.sub("", PurePosixPath(filename.replace("\\", "/")).name).strip()
    return "" if name in (".", "..") else name


def checked_file(filename: str, data: bytes, max_bytes: int) -> tuple[str, FileKind]:
    """The file's clean name and kind; BAD_USER_INPUT naming `file` for anything else."""
    name = clean_name(filename)
    if len(data) > max_bytes:
        raise BadUserInput(
            f"the file is {len(data)} bytes, more than the limit of {max_bytes} bytes for a"
            " part's file",
            field="file",
            maxBytes=max_bytes,
        )
    if not data:
        raise BadUserInput("the file is empty", field="file")
    if not name:
        raise BadUserInput("the file has no name", field="file")
    if len(name) > MAX_NAME_LENGTH:
        raise BadUserInput(
            f"the file's name is longer than {MAX_NAME_LENGTH} characters", field="file"
        )
    named = BY_EXTENSION.get(PurePosixPath(name.lower()).suffix)
    found = content_kind(data)
    if named is None:
        if found is None:
            raise BadUserInput(
                f"{name}: only {ACCEPTED} files are accepted", field="file", accepted=ACCEPTED
            )
        raise BadUserInput(
            f"{name} is a {found.name} file by its content, but its name does not end in"
            f" {' or '.join(found.extensions)}",
            field="file",
        )
    if found is None:
        raise BadUserInput(
            f"{name} is not a {named.name} file: a {named.name} file {named.looks_like}",
            field="file",
        )
    if found is not named:
        raise BadUserInput(
            f"{name} is named as a {named.name} file, but its content is a {found.name} file",
            field="file",
        )
    return name, named


# -- STEP to GLB --------------------------------------------------------------------------------


class ConversionFailed(Exception):
    """The file cannot be converted; the message says why, for people."""


_CONVERTER = "import sys, cascadio; sys.exit(cascadio.step_to_glb(sys.argv[1], sys.argv[2]))"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def glb_meshes(data: bytes) -> int:
    """How many meshes a GLB's JSON chunk has; ValueError if it is no valid GLB 2."""
    if not _is_glb(data):
        raise ValueError("not a glTF 2 binary file")
    if len(data) < 20:
        raise ValueError("no JSON chunk")
    length, chunk_type = struct.unpack_from("<II", data, 12)
    if chunk_type != 0x4E4F534A or 20 + length > len(data):
        raise ValueError("no JSON chunk")
    document = json.loads(data[20 : 20 + length])
    return len(document.get("meshes") or [])


def _converter_said(output: bytes) -> str:
    """The converter's complaint, readable: its error lines without colours, shortened."""
    lines = [
        " ".join(_ANSI.sub("", line).replace("*", " ").split())
        for line in output.decode("utf-8", "replace").splitlines()
    ]
    lines = [line for line in lines if line]
    errors = [line for line in lines if "err" in line.lower() or "fail" in line.lower()]
    said = "; ".join(errors or lines[-3:])
    return said[:MAX_ERROR_LENGTH]


async def step_to_glb(
    data: bytes,
    *,
    time_limit: float,
    keep_alive: Callable[[], Awaitable[None]] | None = None,
) -> bytes:
    """Convert STEP bytes to GLB bytes in a child process running cascadio; ConversionFailed
    with a readable reason for a file it cannot convert, a crash, or a run past `time_limit`
    seconds (the child is killed). `keep_alive` is awaited every half minute while it runs."""
    directory = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="holdfast-step-"))
    try:
        source, target = directory / "model.step", directory / "model.glb"
        await asyncio.to_thread(source.write_bytes, data)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CONVERTER,
            str(source),
            str(target),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=directory,
        )
        talking = asyncio.ensure_future(process.communicate())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + time_limit
        try:
            while not talking.done():
                left = deadline - loop.time()
                if left <= 0:
                    raise ConversionFailed(
                        f"the conversion took longer than {time_limit:g} s and was stopped"
                    )
                await asyncio.wait({talking}, timeout=min(left, LEASE_RENEWAL_SECONDS))
                if not talking.done() and keep_alive is not None:
                    await keep_alive()
        finally:
            if not talking.done():  # too slow, or the job was cancelled: kill the child
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await asyncio.wait({talking}, timeout=10)  # its pipes close as it dies
                talking.cancel()
        output, _ = talking.result()
        code = process.returncode
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            raise ConversionFailed(
                f"the converter crashed on this STEP file ({name}): it cannot be read"
            )
        if code != 0:
            said = _converter_said(output)
            raise ConversionFailed(
                "this STEP file could not be read" + (f": {said}" if said else "")
            )
        try:
            glb = await asyncio.to_thread(target.read_bytes)
        except FileNotFoundError:
            raise ConversionFailed("the converter made no model of this STEP file") from None
        try:
            meshes = glb_meshes(glb)
        except ValueError as error:
            raise ConversionFailed(f"the converter made no valid model ({error})") from None
        if meshes == 0:
            raise ConversionFailed("this STEP file has no shape to show (the model has no mesh)")
        return glb
    finally:
        await asyncio.to_thread(shutil.rmtree, directory, True)


# -- the service --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartFileView:
    id: int
    part_id: int
    filename: str
    size: int
    content_type: str
    kind: str
    sha256: str
    uploaded_by: int | None
    uploaded_at: datetime
    model_status: str | None
    model_error: str | None
    file_id: int
    model_file_id: int | None

    @classmethod
    def of(cls, row: PartFile, original: StoredFile) -> PartFileView:
        return cls(
            id=row.id,
            part_id=row.part_id,
            filename=original.filename,
            size=original.size,
            content_type=original.content_type,
            kind=row.kind,
            sha256=row.sha256,
            uploaded_by=row.uploaded_by,
            uploaded_at=row.uploaded_at,
            model_status=row.model_status,
            model_error=row.model_error,
            file_id=row.file_id,
            model_file_id=row.model_file_id,
        )

    def audited(self) -> dict[str, Any]:
        return {
            "part_id": self.part_id,
            "filename": self.filename,
            "size": self.size,
            "kind": self.kind,
            "sha256": self.sha256,
            "model_status": self.model_status,
        }


class _Gone(Exception):
    """The part file was deleted while its conversion ran."""


FilesChanged = Callable[[int], Awaitable[None]]


class PartFiles:
    def __init__(
        self,
        db: Database,
        files: Files,
        jobs: Jobs,
        *,
        max_bytes: int = 50 * 1024**2,
        conversion_timeout: float = 120.0,
    ) -> None:
        self.db = db
        self.files = files
        self.jobs = jobs
        self.max_bytes = max_bytes
        self.conversion_timeout = conversion_timeout
        self._listeners: list[FilesChanged] = []
        jobs.handle(CONVERT_STEP, self._convert, context=True)

    def when_files_change(self, callback: FilesChanged) -> None:
        """Call `callback(part_id)` after a part's files or a model's status changed."""
        self._listeners.append(callback)

    async def _changed(self, part_id: int) -> None:
        for callback in self._listeners:
            try:
                await callback(part_id)
            except Exception:
                logger.exception("a part-files listener failed for part %s", part_id)

    # -- reading ---------------------------------------------------------------------------

    async def of_parts(self, part_ids: list[int]) -> dict[int, list[PartFileView]]:
        """Every file of each part, oldest first (an empty list for a part without)."""
        found: dict[int, list[PartFileView]] = {part_id: [] for part_id in part_ids}
        async with self.db.read() as session:
            rows = await store.of_parts(session, list(part_ids))
        for row, original in rows:
            found[row.part_id].append(PartFileView.of(row, original))
        return found

    async def get(self, part_file_id: int) -> PartFileView:
        async with self.db.read() as session:
            found = await store.with_files(session, part_file_id)
        if found is None:
            raise NotFound(f"no part file with id {part_file_id}", field="id")
        return PartFileView.of(*found)

    async def download(self, view: PartFileView) -> Download:
        """A fresh short-lived link to the file as uploaded."""
        link = await self.files.link(view.file_id)
        if link is None:
            raise NotFound(f"the file {view.filename} is gone", field="id")
        return link

    async def model(self, view: PartFileView) -> Download | None:
        """A fresh short-lived link to the GLB made from a STEP file, once it is READY."""
        if view.model_status != READY or view.model_file_id is None:
            return None
        return await self.files.link(view.model_file_id)

    # -- writing ---------------------------------------------------------------------------

    async def upload(self, actor: User, part_id: int, filename: str, data: bytes) -> PartFileView:
        name, kind = checked_file(filename, data, self.max_bytes)
        async with self.db.read() as session:
            if await parts_store.get(session, part_id) is None:
                raise NotFound(f"no part with id {part_id}", field="partId")
        digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        try:
            async with (
                self.files.blob(data, STORAGE_PREFIX) as kept,
                self.db.transaction() as session,
            ):
                part = await parts_store.get(session, part_id)
                if part is None:
                    raise NotFound(f"no part with id {part_id}", field="partId")
                file_id = await self.files.store(
                    session,
                    filename=name,
                    content_type=kind.content_type,
                    data=kept,
                    created_by=actor.id,
                    forever=True,
                )
                row = PartFile(
                    part_id=part_id,
                    file_id=file_id,
                    kind=kind.name,
                    sha256=digest,
                    uploaded_by=actor.id,
                    model_status=PENDING if kind is STEP else None,
                )
                session.add(row)
                await session.flush()
                if kind is STEP:
                    await self.jobs.enqueue(
                        CONVERT_STEP,
                        {"part_file": row.id},
                        session=session,
                        created_by=actor.id,
                        max_attempts=CONVERSION_ATTEMPTS,
                    )
                original = await session.get(StoredFile, file_id)
                view = PartFileView.of(row, original)
                audit.record(
                    session,
                    actor=actor,
                    action="create",
                    resource_type="part_file",
                    resource_id=row.id,
                    after={**view.audited(), "part": part.short_id},
                )
        except IntegrityError:  # the part went while the file was stored
            raise NotFound(f"no part with id {part_id}", field="partId") from None
        await self._changed(part_id)
        return view

    async def delete(self, actor: User, part_file_id: int) -> PartFileView:
        require_admin(actor)
        async with self.db.transaction() as session:
            found = await store.with_files(session, part_file_id)
            if found is None:
                raise NotFound(f"no part file with id {part_file_id}", field="id")
            view = PartFileView.of(*found)
            await self.files.forget(session, await store.delete_rows(session, [part_file_id]))
            audit.record(
                session,
                actor=actor,
                action="delete",
                resource_type="part_file",
                resource_id=part_file_id,
                before=view.audited(),
            )
        await self._changed(view.part_id)
        return view

    async def delete_files_of_parts(self, session: AsyncSession, part_ids: list[int]) -> None:
        """Remove every file of these parts, in the caller's transaction (the one deleting
        the parts); their bytes go by a job that commits with it."""
        ids = await store.ids_of_parts(session, list(part_ids))
        await self.files.forget(session, await store.delete_rows(session, ids))

    # -- converting ------------------------------------------------------------------------

    async def _convert(self, payload: dict[str, Any], context: JobContext) -> dict[str, Any]:
        part_file_id = payload["part_file"]
        async with self.db.read() as session:
            found = await store.with_files(session, part_file_id)
        if found is None or found[0].model_status != PENDING:
            return {"modelStatus": None if found is None else found[0].model_status}
        view = PartFileView.of(*found)
        try:
            await context.report(0.1)
            data = await self.files.data(view.file_id)
            glb = await step_to_glb(
                data,
                time_limit=self.conversion_timeout,
                keep_alive=lambda: context.report(0.5),
            )
            await context.report(0.9)
            await self._store_model(view, glb)
        except _Gone:
            return {"modelStatus": None}
        except ConversionFailed as failure:
            await self._fail(view, str(failure))
            raise BadUserInput(str(failure)) from None  # the job fails at once, no retry
        except DomainError:
            raise
        except Exception:
            if context.attempt >= CONVERSION_ATTEMPTS:
                await self._fail(view, "the conversion failed unexpectedly; upload it again")
            raise
        await self._changed(view.part_id)
        return {"modelStatus": READY}

    async def _store_model(self, view: PartFileView, glb: bytes) -> None:
        stem = PurePosixPath(view.filename).stem or "model"
        async with (
            self.files.blob(glb, STORAGE_PREFIX) as kept,
            self.db.transaction() as session,
        ):
            model_id = await self.files.store(
                session,
                filename=f"{stem}.glb",
                content_type=GLB.content_type,
                data=kept,
                created_by=view.uploaded_by,
                forever=True,
            )
            if not await store.set_model(session, view.id, status=READY, model_file_id=model_id):
                raise _Gone

    async def _fail(self, view: PartFileView, error: str) -> None:
        async with self.db.transaction() as session:
            changed = await store.set_model(
                session, view.id, status=FAILED, error=error[:MAX_ERROR_LENGTH]
            )
        if changed:
            await self._changed(view.part_id)
