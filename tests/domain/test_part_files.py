"""Part files below the API: what is accepted by content, the blob storage, STEP → GLB in a
child process for real (the bracket fixture, a corrupt file, a file with no shape, a time
limit), and deleting the files of parts with the parts, bytes included."""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from db.engine import Database
from db.files import StoredFile
from db.identity import User
from db.jobs import Job
from db.parts import Part
from db.parts.files import PartFile
from domain.access import Role
from domain.errors import BadUserInput, Forbidden, NotFound
from domain.files import Files
from domain.jobs import Jobs
from domain.parts.files import (
    CONVERT_STEP,
    ConversionFailed,
    PartFiles,
    checked_file,
    clean_name,
    step_to_glb,
)
from domain.storage import BlobMissing, LocalStorage, new_key

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BRACKET = (FIXTURES / "bracket.step").read_bytes()
CORRUPT = (FIXTURES / "corrupt.step").read_bytes()
NO_SHAPE = b"ISO-10303-21;\nHEADER;\nENDSEC;\nDATA;\nENDSEC;\nEND-ISO-10303-21;\n"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
ASCII_STL = b"solid cube\n facet normal 0 0 1\n  outer loop\n   vertex 0 0 0\n   vertex 1 0 0\n" + (
    b"   vertex 0 1 0\n  endloop\n endfacet\nendsolid cube\n"
)


def glb(json_body: bytes = b'{"asset":{"version":"2.0"}}', version: int = 2) -> bytes:
    body = json_body + b" " * (-len(json_body) % 4)
    return struct.pack("<4sII", b"glTF", version, 20 + len(body)) + (
        struct.pack("<II", len(body), 0x4E4F534A) + body
    )


def binary_stl(triangles: int = 2, extra: bytes = b"") -> bytes:
    return (
        b"binary stl".ljust(80, b"\0")
        + struct.pack("<I", triangles)
        + b"\0" * 50 * (triangles)
        + extra
    )


def glb_document(data: bytes) -> dict:
    """The JSON chunk of a GLB, checked as the glTF 2 binary format says (not by our code)."""
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    chunk_length, chunk_type = struct.unpack_from("<II", data, 12)
    assert chunk_type == 0x4E4F534A  # "JSON"
    return json.loads(data[20 : 20 + chunk_length])


# -- what is accepted -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("bracket.step", BRACKET, "STEP"),
        ("BRACKET.STP", BRACKET, "STEP"),
        ("bom.step", b"\xef\xbb\xbf \r\n\tISO-10303-21;\nHEADER;", "STEP"),
        ("drawing.pdf", PDF, "PDF"),
        ("model.glb", glb(), "GLB"),
        ("part.stl", binary_stl(), "STL"),
        ("solid-header.stl", b"solid but binary".ljust(80, b"\0") + binary_stl(1)[80:], "STL"),
        ("cube.stl", ASCII_STL, "STL"),
    ],
)
def test_accepted_files(name, data, kind):
    checked_name, checked_kind = checked_file(name, data, 10**6)
    assert (checked_name, checked_kind.name) == (name, kind)


@pytest.mark.parametrize(
    ("name", "data", "said"),
    [
        ("notes.txt", b"hello", "only STEP (.step, .stp), PDF (.pdf), GLB (.glb) and STL"),
        ("bracket", BRACKET, "is a STEP file by its content, but its name does not end in"),
        ("drawing.pdf", BRACKET, "is named as a PDF file, but its content is a STEP file"),
        ("bracket.step", PDF, "is named as a STEP file, but its content is a PDF file"),
        ("bracket.step", b"ISO-10303-2;\nHEADER;", "not a STEP file: a STEP file starts with"),
        ("model.glb", glb(version=1), "not a GLB file"),
        ("model.glb", glb()[:-4], "not a GLB file"),
        ("part.stl", binary_stl(2, extra=b"\0"), "not a STL file"),
        ("part.stl", PDF, "is named as a STL file, but its content is a PDF file"),
        ("empty.step", b"", "the file is empty"),
        ("../../", BRACKET, "the file has no name"),
        ("x" * 252 + ".stl", ASCII_STL, "longer than 255 characters"),
    ],
)
def test_refused_files_name_the_file(name, data, said):
    with pytest.raises(BadUserInput) as refused:
        checked_file(name, data, 10**6)
    assert said in refused.value.message
    assert refused.value.extensions["field"] == "file"


def test_over_the_size_limit():
    checked_file("drawing.pdf", PDF, len(PDF))
    with pytest.raises(BadUserInput) as refused:
        checked_file("drawing.pdf", PDF, len(PDF) - 1)
    assert f"more than the limit of {len(PDF) - 1} bytes" in refused.value.message
    assert refused.value.extensions == {"field": "file", "maxBytes": len(PDF) - 1}


def test_names_lose_directories_and_control_characters():
    assert clean_name("C:\\Users\\mira\\bracket.step") == "bracket.step"
    assert clean_name("../../etc/bra\x00ck\net.step") == "bracket.step"
    assert clean_name("  plate.pdf ") == "plate.pdf"


# -- the blob storage -------------------------------------------------------------------------


async def test_local_storage_puts_opens_and_deletes(tmp_path):
    storage = LocalStorage(tmp_path / "data")
    assert not (tmp_path / "data").exists()  # made when the first blob is written
    key = new_key("parts")
    await storage.put(key, b"x" * 600_000)
    blob = await storage.open(key)
    assert blob.size == 600_000
    chunks = [chunk async for chunk in blob.chunks()]
    assert len(chunks) > 1 and b"".join(chunks) == b"x" * 600_000
    assert await (await storage.open(key)).read() == b"x" * 600_000
    await storage.put(key, b"second")  # a put replaces whole
    assert await (await storage.open(key)).read() == b"second"
    assert [path.name for path in (tmp_path / "data").rglob("*") if path.is_file()] == [
        key.rsplit("/", 1)[1]
    ]  # no temporary file left behind
    await storage.delete(key)
    await storage.delete(key)  # idempotent
    with pytest.raises(BlobMissing):
        await storage.open(key)
    for bad in ("../escape", "/abs", "a//b", "UPPER", "a/./b", ""):
        with pytest.raises(ValueError, match="not a storage key"):
            await storage.put(bad, b"")


async def test_a_failed_put_leaves_nothing(tmp_path):
    storage = LocalStorage(tmp_path)
    key = new_key("parts")
    with pytest.raises(TypeError):
        await storage.put(key, "not bytes")  # type: ignore[arg-type]
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []
    with pytest.raises(BlobMissing):
        await storage.open(key)


# -- STEP to GLB, for real ----------------------------------------------------------------------


async def test_the_bracket_converts_to_a_glb_with_a_mesh():
    model = await step_to_glb(BRACKET, time_limit=120)
    assert model[:4] == b"glTF" and struct.unpack_from("<I", model, 4) == (2,)
    document = glb_document(model)
    assert len(document["meshes"]) >= 1
    assert document["asset"]["version"] == "2.0"


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (CORRUPT, "this STEP file could not be read: "),
        (NO_SHAPE, "this STEP file could not be read"),
        (b"ISO-10303-21;\n" + os.urandom(4096), "this STEP file could not be read"),
    ],
)
async def test_a_file_that_cannot_convert_says_why(data, said):
    with pytest.raises(ConversionFailed) as failed:
        await step_to_glb(data, time_limit=120)
    assert str(failed.value).startswith(said)
    assert "\x1b[" not in str(failed.value)  # the converter's colours are gone
    assert len(str(failed.value)) < 600


async def test_a_conversion_past_its_time_is_stopped_and_cleaned_up():
    before = set(Path(tempfile.gettempdir()).glob("holdfast-step-*"))
    with pytest.raises(ConversionFailed, match=r"took longer than 0\.01 s and was stopped"):
        await step_to_glb(BRACKET, time_limit=0.01)
    assert set(Path(tempfile.gettempdir()).glob("holdfast-step-*")) <= before


# -- the service --------------------------------------------------------------------------------


@pytest.fixture
async def service(settings, tmp_path):
    db = Database(settings.database_url)
    jobs = Jobs(db)
    storage = LocalStorage(tmp_path / "data")
    files = Files(db, storage=storage, jobs=jobs)
    yield PartFiles(db, files, jobs, max_bytes=10**6, conversion_timeout=120)
    await db.dispose()


async def people(db: Database) -> tuple[User, User]:
    async with db.transaction() as session:
        made = [
            User(username=name, email=f"{name}@example.com", password_hash="-", role=role)
            for name, role in (("root", Role.ADMIN.value), ("mira", Role.USER.value))
        ]
        session.add_all(made)
    return made[0], made[1]


async def new_part(db: Database, number: int) -> int:
    async with db.transaction() as session:
        part = Part(number=number, short_id=f"P-{number:04d}", name="Bracket", kind="CNC")
        session.add(part)
        await session.flush()
        return part.id


async def count(db: Database, model) -> int:
    async with db.read() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


def blobs(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


async def test_upload_convert_and_delete_with_the_parts(service, tmp_path):
    db, data_dir = service.db, tmp_path / "data"
    admin, mira = await people(db)
    first, second = await new_part(db, 1), await new_part(db, 2)
    changed: list[int] = []

    async def heard(part_id: int) -> None:
        changed.append(part_id)

    service.when_files_change(heard)

    step = await service.upload(mira, first, "bracket.step", BRACKET)
    assert (step.kind, step.model_status, step.size) == ("STEP", "PENDING", len(BRACKET))
    pdf = await service.upload(mira, first, "drawing.pdf", PDF)
    assert (pdf.kind, pdf.model_status, pdf.content_type) == ("PDF", None, "application/pdf")
    stl = await service.upload(mira, second, "cube.stl", ASCII_STL)
    assert changed == [first, first, second]
    assert len(blobs(data_dir)) == 3
    async with db.read() as session:
        [job] = (await session.execute(select(Job))).scalars().all()
    assert (job.kind, json.loads(job.payload), job.created_by) == (
        CONVERT_STEP,
        {"part_file": step.id},
        mira.id,
    )

    assert await service.jobs.run_pending() == 1
    converted = await service.get(step.id)
    assert (converted.model_status, converted.model_error) == ("READY", None)
    assert changed[-1] == first
    assert len(blobs(data_dir)) == 4  # the GLB beside the original
    model = await service.files.data(converted.model_file_id)
    assert len(glb_document(model)["meshes"]) >= 1
    by_part = await service.of_parts([first, second, 999])
    assert [view.filename for view in by_part[first]] == ["bracket.step", "drawing.pdf"]
    assert [view.id for view in by_part[second]] == [stl.id] and by_part[999] == []

    with pytest.raises(NotFound):
        await service.upload(mira, 999, "drawing.pdf", PDF)
    with pytest.raises(Forbidden):
        await service.delete(mira, pdf.id)
    await service.delete(admin, pdf.id)
    with pytest.raises(NotFound):
        await service.get(pdf.id)

    async with db.transaction() as session:  # what deleting parts does
        await service.delete_files_of_parts(session, [first, second])
        await session.execute(Part.__table__.delete())
    assert await count(db, PartFile) == 0
    assert await count(db, StoredFile) == 0
    assert len(blobs(data_dir)) == 4  # until the job that committed with the delete runs
    await service.jobs.run_pending()
    assert blobs(data_dir) == []


async def test_a_part_with_files_cannot_be_deleted_without_them(service):
    _, mira = await people(service.db)
    part_id = await new_part(service.db, 1)
    await service.upload(mira, part_id, "drawing.pdf", PDF)
    with pytest.raises(IntegrityError, match=r"(?i)foreign key"):
        async with service.db.transaction() as session:
            await session.execute(Part.__table__.delete())
    assert await count(service.db, PartFile) == 1


async def test_a_corrupt_step_fails_once_with_its_reason(service, tmp_path):
    _, mira = await people(service.db)
    part_id = await new_part(service.db, 1)
    view = await service.upload(mira, part_id, "broken.step", CORRUPT)
    assert await service.jobs.run_pending() == 1
    failed = await service.get(view.id)
    assert failed.model_status == "FAILED"
    assert failed.model_error.startswith("this STEP file could not be read: ")
    assert failed.model_file_id is None and await service.model(failed) is None
    async with service.db.read() as session:
        [job] = (await session.execute(select(Job))).scalars().all()
    assert (job.status, job.attempts, job.error) == ("failed", 1, failed.model_error)
    assert len(blobs(tmp_path / "data")) == 1  # the original only


async def test_a_file_deleted_while_it_converts_leaves_no_model(service, tmp_path):
    admin, mira = await people(service.db)
    part_id = await new_part(service.db, 1)
    view = await service.upload(mira, part_id, "bracket.step", BRACKET)
    original = service.files.data

    async def deleted_meanwhile(file_id: int) -> bytes:
        data = await original(file_id)
        await service.delete(admin, view.id)
        return data

    service.files.data = deleted_meanwhile
    assert await service.jobs.run_pending() >= 1
    service.files.data = original
    await service.jobs.run_pending()  # the blob deletion
    assert await count(service.db, StoredFile) == 0
    assert blobs(tmp_path / "data") == []
