"""Part files through the API: multipart uploads of each accepted kind, checked by content and
size, CSRF-safe; the STEP conversion job end to end on the real fixture (a GLB downloadable
through `model`) and the corrupt file; short-lived download links; admins delete, audited."""

from __future__ import annotations

import asyncio
import struct
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from db.base import utcnow
from db.engine import Database
from db.files import DownloadLink, StoredFile
from db.jobs import Job
from db.parts.files import PartFile
from tests.domain.test_part_files import ASCII_STL, BRACKET, CORRUPT, PDF, binary_stl, glb
from tests.domain.test_part_files import glb_document as glb_json
from tests.support.factories import users
from tests.support.graphql import GraphQL
from tests.support.parts import part

FILE_FIELDS = """id filename size contentType sha256 uploadedAt modelStatus modelError
  download { url filename expiresAt } model { url filename expiresAt }"""
UPLOAD = f"""mutation($part: ID!, $file: Upload!) {{
  uploadPartFile(partId: $part, file: $file) {{ {FILE_FIELDS} }} }}"""
PART_FILE = f"query($id: ID!) {{ partFile(id: $id) {{ {FILE_FIELDS} }} }}"
DELETE = "mutation($id: ID!) { deletePartFile(id: $id) }"
AUDIT = """query { auditLog(resourceType: "part_file") { edges { node {
  action resourceId actor { username } changes snapshot } } } }"""


@pytest.fixture
def settings(settings, tmp_path):
    """Stored files of this test under its own directory."""
    return settings.replace(data_dir=str(tmp_path / "data"))


@pytest.fixture
async def db(settings):
    database = Database(settings.database_url)
    yield database
    await database.dispose()


@pytest.fixture
async def people(api):
    return await users(api, "mira")


@pytest.fixture
async def part_id(api, people) -> str:
    return (await part(api, people["mira"], name="Gearbox plate"))["id"]


async def upload(api: GraphQL, token, part_id, name: str, data: bytes, **options) -> dict:
    response = await api.upload(
        UPLOAD,
        {"part": part_id, "file": None},
        {"variables.file": (name, data)},
        token=token,
        **options,
    )
    return response.json()


async def uploaded(api: GraphQL, token: str, part_id: str, name: str, data: bytes) -> dict:
    body = await upload(api, token, part_id, name, data)
    assert "errors" not in body, body
    return body["data"]["uploadPartFile"]


async def refused(api: GraphQL, token, part_id, name: str, data: bytes) -> tuple[str, dict]:
    body = await upload(api, token, part_id, name, data)
    assert body.get("errors") and body.get("data") is None, body
    error = body["errors"][0]
    return error["extensions"]["code"], error


async def fetched(api: GraphQL, url: str) -> bytes:
    got = await api.http.get(url)  # no Authorization: the URL is the credential
    assert got.status_code == 200, got.text
    assert got.headers["cache-control"] == "no-store"
    assert int(got.headers["content-length"]) == len(got.content)
    return got.content


async def converted(api: GraphQL, token: str, file_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = (await api.data(PART_FILE, {"id": file_id}, token=token))["partFile"]
        if found["modelStatus"] != "PENDING":
            return found
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.2)


async def stored(db: Database) -> tuple[int, int]:
    async with db.read() as session:
        part_files = (await session.execute(select(func.count()).select_from(PartFile))).scalar()
        files = (await session.execute(select(func.count()).select_from(StoredFile))).scalar()
    return part_files, files


def blobs(settings) -> list[Path]:
    root = Path(settings.data_dir)
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


ACCEPTED = [
    ("bracket.step", BRACKET, "model/step", "PENDING"),
    ("bracket.STP", BRACKET, "model/step", "PENDING"),
    ("drawing.pdf", PDF, "application/pdf", None),
    ("viewer.glb", glb(), "model/gltf-binary", None),
    ("plate.stl", binary_stl(3), "model/stl", None),
    ("cube.stl", ASCII_STL, "model/stl", None),
]


async def test_each_accepted_kind_is_stored_and_downloadable(api, people, part_id, settings, db):
    for name, data, content_type, status in ACCEPTED:
        made = await uploaded(api, people["mira"], part_id, name, data)
        assert (made["filename"], made["size"], made["contentType"]) == (
            name,
            len(data),
            content_type,
        )
        assert (made["modelStatus"], made["modelError"], made["model"]) == (status, None, None)
        assert made["download"]["filename"] == name
        assert made["download"]["url"].startswith("/downloads/")
        assert await fetched(api, made["download"]["url"]) == data
    assert await stored(db) == (len(ACCEPTED), len(ACCEPTED))
    assert len(blobs(settings)) == len(ACCEPTED)  # in the data directory, not the database
    async with db.read() as session:
        in_database = await session.execute(
            select(StoredFile.data).where(StoredFile.data.is_not(None))
        )
        assert in_database.all() == []


async def test_the_step_fixture_converts_to_a_model_you_can_download(api, people, part_id, db):
    made = await uploaded(api, people["mira"], part_id, "bracket.step", BRACKET)
    assert made["modelStatus"] == "PENDING"
    done = await converted(api, people["mira"], made["id"])
    assert (done["modelStatus"], done["modelError"]) == ("READY", None), done
    assert done["model"]["filename"] == "bracket.glb"
    model = await fetched(api, done["model"]["url"])
    assert model[:4] == b"glTF" and struct.unpack_from("<I", model, 4) == (2,)
    assert len(glb_json(model)["meshes"]) >= 1
    got = await api.http.get(done["model"]["url"])
    assert got.headers["content-type"] == "model/gltf-binary"
    assert await fetched(api, done["download"]["url"]) == BRACKET  # the original stays
    async with db.read() as session:
        [job] = (await session.execute(select(Job).where(Job.kind == "convert-step"))).scalars()
    assert (job.status, job.attempts) == ("succeeded", 1)
    history = await api.data("{ partHistory { kind message } }", token=people["mira"])
    updates = [e for e in history["partHistory"] if e["kind"] == "UPDATED"]
    assert updates == [{"kind": "UPDATED", "message": "files changed"}] * 2  # upload, model


async def test_a_corrupt_step_is_failed_with_a_readable_error(api, people, part_id, db):
    made = await uploaded(api, people["mira"], part_id, "broken.step", CORRUPT)
    done = await converted(api, people["mira"], made["id"])
    assert done["modelStatus"] == "FAILED"
    assert done["modelError"].startswith("this STEP file could not be read: ")
    assert "Incorrect syntax" in done["modelError"]
    assert done["model"] is None
    assert await fetched(api, done["download"]["url"]) == CORRUPT
    async with db.read() as session:
        [job] = (await session.execute(select(Job).where(Job.kind == "convert-step"))).scalars()
    assert (job.status, job.attempts, job.error) == ("failed", 1, done["modelError"])


@pytest.mark.parametrize("time_limit", [0.01])
async def test_a_conversion_past_the_time_limit_is_failed(settings, tmp_path, time_limit):
    from server.app import create_app

    application = create_app(settings.replace(step_conversion_timeout=time_limit))
    async with application.router.lifespan_context(application), GraphQL(application) as api:
        tokens = await users(api, "mira")
        part_id = (await part(api, tokens["mira"]))["id"]
        made = await uploaded(api, tokens["mira"], part_id, "bracket.step", BRACKET)
        done = await converted(api, tokens["mira"], made["id"])
    assert done["modelStatus"] == "FAILED"
    assert "took longer than" in done["modelError"] and "was stopped" in done["modelError"]


REFUSED = [
    ("notes.txt", b"just text", "only STEP (.step, .stp), PDF (.pdf), GLB (.glb) and STL"),
    ("bracket.pdf", BRACKET, "named as a PDF file, but its content is a STEP file"),
    ("drawing.step", PDF, "named as a STEP file, but its content is a PDF file"),
    (
        "fake.step",
        b"ISO 10303-21 almost\n",
        "not a STEP file: a STEP file starts with ISO-10303-21;",
    ),
    ("model.glb", glb(version=1), "not a GLB file"),
    ("plate.stl", binary_stl(3)[:-1], "not a STL file"),
    ("bracket", BRACKET, "is a STEP file by its content, but its name does not end in .step"),
    ("empty.stl", b"", "the file is empty"),
]


async def test_refused_kinds_and_mismatches_name_the_file(api, people, part_id, settings, db):
    for name, data, message in REFUSED:
        code, error = await refused(api, people["mira"], part_id, name, data)
        assert (code, error["extensions"]["field"]) == ("BAD_USER_INPUT", "file"), error
        assert message in error["message"], error
    assert await stored(db) == (0, 0)
    assert blobs(settings) == []


async def test_over_the_part_file_limit(settings, db):
    from server.app import create_app

    limited = settings.replace(max_part_file_bytes=len(PDF))
    application = create_app(limited)
    async with application.router.lifespan_context(application), GraphQL(application) as api:
        tokens = await users(api, "mira")
        part_id = (await part(api, tokens["mira"]))["id"]
        await uploaded(api, tokens["mira"], part_id, "drawing.pdf", PDF)  # at the limit
        code, error = await refused(api, tokens["mira"], part_id, "big.pdf", PDF + b" ")
        assert (code, error["extensions"]["field"]) == ("BAD_USER_INPUT", "file")
        assert error["extensions"]["maxBytes"] == len(PDF)
        assert f"more than the limit of {len(PDF)} bytes" in error["message"]
        assert await stored(db) == (1, 1)
        assert len(blobs(limited)) == 1


async def test_over_the_request_limit(settings, db):
    from server.app import create_app

    application = create_app(settings.replace(max_upload_bytes=4096, max_part_file_bytes=4096))
    async with application.router.lifespan_context(application), GraphQL(application) as api:
        tokens = await users(api, "mira")
        part_id = (await part(api, tokens["mira"]))["id"]
        response = await api.upload(
            UPLOAD,
            {"part": part_id, "file": None},
            {"variables.file": ("big.stl", binary_stl(200))},
            token=tokens["mira"],
        )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert await stored(db) == (0, 0)
    assert blobs(settings) == []


async def test_an_upload_without_the_csrf_header_is_refused(api, people, part_id, settings, db):
    response = await api.upload(
        UPLOAD,
        {"part": part_id, "file": None},
        {"variables.file": ("drawing.pdf", PDF)},
        token="",
        preflight=False,
    )  # what a form on another site could send: no Authorization, no X-Holdfast-Upload
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert await stored(db) == (0, 0)
    assert blobs(settings) == []


async def test_who_may_upload_and_delete(api, people, part_id, settings, db):
    code, _ = await refused(api, "", part_id, "drawing.pdf", PDF)  # not signed in
    assert code == "UNAUTHENTICATED"
    code, error = await refused(api, people["mira"], "987654", "drawing.pdf", PDF)
    assert (code, error["extensions"]["field"]) == ("NOT_FOUND", "partId")
    code, _ = await refused(api, people["mira"], "not-an-id", "drawing.pdf", PDF)
    assert code == "BAD_USER_INPUT"
    assert await stored(db) == (0, 0)
    made = await uploaded(api, people["mira"], part_id, "bracket.step", BRACKET)
    await converted(api, people["mira"], made["id"])
    assert len(blobs(settings)) == 2  # the original and its model

    code, _ = await api.error(PART_FILE, {"id": made["id"]}, token="")
    assert code == "UNAUTHENTICATED"
    code, _ = await api.error(DELETE, {"id": made["id"]}, token=people["mira"])
    assert code == "FORBIDDEN"
    assert await stored(db) == (1, 2)
    deleted = await api.data(DELETE, {"id": made["id"]}, token=people["admin"])
    assert deleted == {"deletePartFile": made["id"]}
    assert await stored(db) == (0, 0)
    code, _ = await api.error(DELETE, {"id": made["id"]}, token=people["admin"])
    assert code == "NOT_FOUND"
    code, _ = await api.error(PART_FILE, {"id": made["id"]}, token=people["mira"])
    assert code == "NOT_FOUND"
    deadline = time.monotonic() + 30
    while blobs(settings):  # the bytes go by a job that committed with the delete
        assert time.monotonic() < deadline, blobs(settings)
        await asyncio.sleep(0.1)

    entries = [
        edge["node"] for edge in (await api.data(AUDIT, token=people["admin"]))["auditLog"]["edges"]
    ]
    by_action = {entry["action"]: entry for entry in entries}
    assert set(by_action) == {"create", "delete"}
    assert by_action["create"]["actor"]["username"] == "mira"
    assert by_action["create"]["resourceId"] == made["id"]
    assert by_action["create"]["changes"]["filename"] == [None, "bracket.step"]
    assert by_action["delete"]["actor"]["username"] == "admin"
    assert by_action["delete"]["snapshot"]["filename"] == "bracket.step"
    assert by_action["delete"]["snapshot"]["model_status"] == "READY"


async def test_download_links_are_refused_when_made_up_or_late(api, people, part_id, db):
    made = await uploaded(api, people["mira"], part_id, "drawing.pdf", PDF)
    url = made["download"]["url"]
    assert await fetched(api, url) == PDF
    again = (await api.data(PART_FILE, {"id": made["id"]}, token=people["mira"]))["partFile"]
    assert again["download"]["url"] != url  # a link of their own for each asker
    made_up = await api.http.get("/downloads/" + "A" * 43)
    assert made_up.status_code == 404
    assert (await api.http.get(url + "x")).status_code == 404
    async with db.transaction() as session:
        await session.execute(
            update(DownloadLink).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    late = await api.http.get(url)
    assert late.status_code == 410 and "expired" in late.text
    assert PDF not in late.content
    fresh = (await api.data(PART_FILE, {"id": made["id"]}, token=people["mira"]))["partFile"]
    assert await fetched(api, fresh["download"]["url"]) == PDF


PART_WITH_FILES = """query($id: ID!) { part(id: $id) { shortId files {
  id filename modelStatus download { url } } } }"""
PARTS_WITH_FILES = "{ parts { edges { node { id files { id filename } } } } }"
DELETE_PARTS = (
    "mutation($ids: [ID!]!, $confirm: String) { deleteParts(ids: $ids, confirm: $confirm) { id } }"
)


async def test_a_parts_files_are_on_the_part_and_go_with_it(api, people, part_id, settings, db):
    other = (await part(api, people["mira"], name="Motor mount"))["id"]
    step = await uploaded(api, people["mira"], part_id, "bracket.step", BRACKET)
    await uploaded(api, people["mira"], part_id, "drawing.pdf", PDF)
    await uploaded(api, people["mira"], other, "cube.stl", ASCII_STL)
    await converted(api, people["mira"], step["id"])
    found = (await api.data(PART_WITH_FILES, {"id": part_id}, token=people["mira"]))["part"]
    assert [file["filename"] for file in found["files"]] == ["bracket.step", "drawing.pdf"]
    assert found["files"][0]["modelStatus"] == "READY"
    assert await fetched(api, found["files"][1]["download"]["url"]) == PDF
    listed = (await api.data(PARTS_WITH_FILES, token=people["mira"]))["parts"]["edges"]
    assert {edge["node"]["id"]: len(edge["node"]["files"]) for edge in listed} == {
        part_id: 2,
        other: 1,
    }
    assert len(blobs(settings)) == 4  # three uploads and one model

    await api.data(
        DELETE_PARTS, {"ids": [part_id, other], "confirm": "delete 2 parts"}, token=people["admin"]
    )
    assert await stored(db) == (0, 0)
    deadline = time.monotonic() + 30
    while blobs(settings):  # the bytes go by a job that committed with the delete
        assert time.monotonic() < deadline, blobs(settings)
        await asyncio.sleep(0.1)
