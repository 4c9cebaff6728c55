"""The machinery every area's exports and imports share, over real HTTP: a job's progress, its
download fetched by a plain GET until the link expires, and uploads refused without the
preflight header or over the size limit."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from db.base import utcnow
from db.engine import Database
from db.files import DownloadLink, StoredFile
from domain.transfers import ExportFile
from tests.conftest import start_server, stop_server
from tests.support.factories import users
from tests.support.graphql import GraphQL

JOB = """query($id: ID!) { job(id: $id) { id kind status progress error
    download { url filename expiresAt } importResult { dryRun } } }"""
ME = "{ me { id } }"


async def poll(api: GraphQL, job_id: str, until, token: str | None = None, timeout: float = 20):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        job = (await api.data(JOB, {"id": job_id}, token=token))["job"]
        if until(job):
            return job
        assert asyncio.get_running_loop().time() < deadline, job
        await asyncio.sleep(0.1)


@pytest.fixture
async def db(settings):
    database = Database(settings.database_url)
    yield database
    await database.dispose()


async def test_a_job_reports_progress_that_its_creator_sees(app, api):
    tokens = await users(api, "mira", "noor")
    mira_id = (await api.data(ME, token=tokens["mira"]))["me"]["id"]
    jobs = app.state.services.jobs
    halfway, go_on = asyncio.Event(), asyncio.Event()

    async def slow(payload, context):
        await context.report(0.5)
        halfway.set()
        await go_on.wait()
        return {"done": True}

    jobs.handle("test-slow", slow, context=True)
    job = await jobs.enqueue("test-slow", created_by=int(mira_id))
    await asyncio.wait_for(halfway.wait(), 20)
    seen = await poll(api, str(job.id), lambda j: j["progress"] is not None, tokens["mira"])
    assert (seen["status"], seen["progress"]) == ("running", 0.5)
    code, _ = await api.error(JOB, {"id": str(job.id)}, token=tokens["noor"])
    assert code == "FORBIDDEN"
    assert (await api.data(JOB, {"id": str(job.id)}, token=tokens["admin"]))["job"]["progress"]
    go_on.set()
    done = await poll(api, str(job.id), lambda j: j["status"] == "succeeded", tokens["mira"])
    assert (done["progress"], done["download"], done["importResult"]) == (1.0, None, None)


async def test_a_handler_refusing_its_input_fails_at_once(app, api, admin):
    jobs = app.state.services.jobs

    async def refuse(payload, context):
        from domain.errors import BadUserInput

        raise BadUserInput("the sheet is empty")

    jobs.handle("test-refuse", refuse, context=True)
    admin_id = (await api.data(ME))["me"]["id"]
    job = await jobs.enqueue("test-refuse", created_by=int(admin_id))
    failed = await poll(api, str(job.id), lambda j: j["status"] != "queued" and j["error"])
    assert (failed["status"], failed["error"]) == ("failed", "the sheet is empty")


async def test_an_export_is_downloaded_by_a_plain_get_until_the_link_expires(app, api, admin, db):
    transfers = app.state.services.transfers
    made = "Häuser & Server.xlsx"

    async def export(payload, context):
        await context.report(0.3)
        return ExportFile(made, "application/vnd.ms-excel", b"\x00bytes\xff" * 1000)

    transfers.exporter("test-export", export)
    admin_id = (await api.data(ME))["me"]["id"]
    job = await app.state.services.jobs.enqueue("test-export", created_by=int(admin_id))
    done = await poll(api, str(job.id), lambda j: j["status"] == "succeeded")
    download = done["download"]
    assert download["filename"] == made
    assert download["url"].startswith("/downloads/")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://holdfast.test"
    ) as anonymous:
        got = await anonymous.get(download["url"])
        assert got.status_code == 200
        assert got.content == b"\x00bytes\xff" * 1000
        assert got.headers["content-type"] == "application/vnd.ms-excel"
        assert got.headers["cache-control"] == "no-store"
        assert got.headers["content-disposition"] == (
            'attachment; filename="H_user & Server.xlsx";'
            " filename*=UTF-8''H%C3%A4user%20%26%20Server.xlsx"
        )
        again = (await api.data(JOB, {"id": str(job.id)}))["job"]["download"]
        assert again["url"] != download["url"]  # each one asking gets a link of their own

        async with db.transaction() as session:
            await session.execute(
                update(DownloadLink).values(expires_at=utcnow() - timedelta(seconds=1))
            )
        late = await anonymous.get(download["url"])
        assert late.status_code == 410
        assert "expired" in late.text and "ask for a new one" in late.text
        unknown = await anonymous.get("/downloads/not-a-token")
        assert (unknown.status_code, "unknown" in unknown.text) == (404, True)

        async with db.transaction() as session:
            await session.execute(
                update(StoredFile).values(expires_at=utcnow() - timedelta(seconds=1))
            )
        assert await app.state.services.files.purge_expired() == 1
        gone = (await api.data(JOB, {"id": str(job.id)}))["job"]
        assert (gone["status"], gone["download"]) == ("succeeded", None)
        assert (await anonymous.get(download["url"])).status_code == 404


async def test_download_links_are_absolute_when_a_public_url_is_set(settings):
    from server.app import create_app

    application = create_app(settings.replace(public_url="https://holdfast.example.com/"))
    async with application.router.lifespan_context(application):
        files = application.state.services.files
        async with files.db.transaction() as session:
            file_id = await files.store(
                session, filename="a.txt", content_type="text/plain", data=b"a", created_by=None
            )
        link = await files.link(file_id)
        assert link.url.startswith("https://holdfast.example.com/downloads/")
        assert link.expires_at - utcnow() <= timedelta(seconds=settings.download_ttl)


UPLOAD = "mutation($file: Upload!) { importAssets(file: $file, dryRun: true) { id } }"


def multipart_body(size: int) -> tuple[bytes, str]:
    boundary = "holdfast-test-boundary"
    operations = json.dumps({"query": UPLOAD, "variables": {"file": None}})
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n'
        f"{operations}\r\n",
        f'--{boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n'
        '{"0": ["variables.file"]}\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="0"; filename="big.xlsx"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n",
    ]
    body = "".join(parts).encode() + b"x" * size + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.fixture
def small_upload_server(settings, tmp_path):
    running = start_server(settings.replace(max_upload_bytes=64 * 1024), tmp_path / "server.log")
    yield running
    stop_server(running)


async def test_an_upload_needs_a_header_a_cross_site_form_cannot_send(small_upload_server):
    async with GraphQL(small_upload_server.url) as api:
        refused = await api.upload(
            UPLOAD, {"file": None}, {"variables.file": ("a.xlsx", b"PK")}, preflight=False
        )
        assert refused.status_code == 400
        [error] = refused.json()["errors"]
        assert error["extensions"]["code"] == "BAD_REQUEST"
        assert "X-Holdfast-Upload" in error["message"]
        let_in = await api.upload(UPLOAD, {"file": None}, {"variables.file": ("a.xlsx", b"PK")})
        # past the transport: it is the schema's turn (no token, so not allowed to import)
        assert let_in.status_code == 200, let_in.text
        assert let_in.json()["errors"][0]["extensions"]["code"] != "BAD_REQUEST"


async def test_an_oversize_upload_is_refused_while_it_is_read(small_upload_server):
    body, content_type = multipart_body(200 * 1024)
    headers = {"Content-Type": content_type, "X-Holdfast-Upload": "1"}
    async with httpx.AsyncClient(base_url=small_upload_server.url, timeout=30) as http:
        declared = await http.post("/graphql", content=body, headers=headers)
        assert declared.status_code == 413
        [error] = declared.json()["errors"]
        assert error["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
        assert str(64 * 1024) in error["message"]

        async def chunks():
            for start in range(0, len(body), 16 * 1024):
                yield body[start : start + 16 * 1024]

        streamed = await http.post("/graphql", content=chunks(), headers=headers)
        assert "content-length" not in streamed.request.headers
        assert streamed.status_code == 413
        assert streamed.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
        assert (await http.get("/healthz")).status_code == 200
    assert "Traceback" not in small_upload_server.output()
