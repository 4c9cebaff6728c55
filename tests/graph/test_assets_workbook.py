"""The IT inventory's workbook through the API: exported by a job and fetched by a plain GET,
imported back by a job (multipart upload), all or nothing, by natural key, audited; read by
openpyxl and by LibreOffice; 10,000 servers in one import."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
import subprocess
import time
import zipfile

import openpyxl
import pytest
from sqlalchemy import func, select, text

from db.assets import Datacenter, Gpu, Server, ServerTag
from db.audit import AuditEntry
from db.engine import Database
from domain import workbooks
from domain.assets.workbook import SHEETS
from domain.workbooks import Sheet
from tests.support.assets import container, datacenter, gpu, server, service
from tests.support.factories import users
from tests.support.graphql import GraphQL

EXPORT = "mutation { exportAssets { id kind status } }"
IMPORT = """mutation($file: Upload!, $dryRun: Boolean) {
  importAssets(file: $file, dryRun: $dryRun) { id kind status } }"""
JOB = """query($id: ID!) { job(id: $id) { id status progress error
  download { url filename expiresAt }
  importResult { dryRun created updated unchanged problems { sheet row column message } } } }"""
CLAIM = "mutation($id: ID!) { claimGpu(id: $id) { id holder { username } } }"
ASSET_TABLES = (
    "services",
    "port_mappings",
    "containers",
    "gpu_holds",
    "gpus",
    "server_tags",
    "servers",
    "datacenters",
    "environments",
)
HEADERS = {
    "Datacenters": ["name", "location", "description"],
    "Environments": ["name", "color"],
    "Servers": [
        "name",
        "hostname",
        "management_ip",
        "public_ip",
        "cpu_cores",
        "memory_gb",
        "disk_gb",
        "os",
        "status",
        "datacenter",
        "environment",
        "notes",
        "tags",
    ],
    "Containers": [
        "server",
        "name",
        "image",
        "cpu_limit",
        "memory_limit_mb",
        "ports",
        "status",
        "environment",
    ],
    "Services": ["server", "container", "name", "kind", "port", "health_check_url", "status"],
    "GPUs": ["serial", "model", "memory_gb", "server"],
}


@pytest.fixture
async def db(settings):
    database = Database(settings.database_url)
    yield database
    await database.dispose()


@pytest.fixture
async def people(api):
    return await users(api, "mira")


async def finished(api: GraphQL, job_id: str, token: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = (await api.data(JOB, {"id": job_id}, token=token))["job"]
        if job["status"] in ("succeeded", "failed"):
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.1)


async def export(api: GraphQL, token: str) -> bytes:
    job = (await api.data(EXPORT, token=token))["exportAssets"]
    assert (job["kind"], job["status"]) == ("assets-export", "queued")
    done = await finished(api, job["id"], token)
    assert done["status"] == "succeeded", done
    download = done["download"]
    assert download["filename"].startswith("holdfast-assets-")
    assert download["filename"].endswith(".xlsx")
    got = await api.http.get(download["url"])  # no Authorization: the URL is the credential
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("application/vnd.openxmlformats")
    return got.content


async def start_import(api: GraphQL, token: str, data: bytes, dry_run: bool | None = None):
    response = await api.upload(
        IMPORT,
        {"file": None, "dryRun": dry_run},
        {"variables.file": ("assets.xlsx", data)},
        token=token,
    )
    return response.json()


async def import_workbook(api: GraphQL, token: str, data: bytes, dry_run=None) -> dict:
    body = await start_import(api, token, data, dry_run)
    assert "errors" not in body, body
    job = body["data"]["importAssets"]
    assert job["kind"] == "assets-import"
    return await finished(api, job["id"], token)


def cells(data: bytes) -> dict[str, list[list]]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    return {
        sheet.title: [list(row) for row in sheet.iter_rows(values_only=True)]
        for sheet in book.worksheets
    }


def row(sheet: str, **values) -> list:
    """A row of `sheet` with these cells, the others empty."""
    return [values.get(header) for header in HEADERS[sheet]]


def workbook(**rows: list[list]) -> bytes:
    """A workbook with the given sheets' rows (each sheet with its header)."""
    return workbooks.write_workbook(
        Sheet(sheet.sheet, sheet.headers, rows.get(sheet.sheet, [])) for sheet in SHEETS
    )


async def count(db: Database, model) -> int:
    async with db.read() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def last_audit_id(db: Database) -> int:
    async with db.read() as session:
        return (await session.execute(select(func.max(AuditEntry.id)))).scalar_one() or 0


def zipped_parts(xml: bytes) -> bytes:
    """A ZIP with a workbook's parts, whose XML is broken."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", xml)
        archive.writestr("xl/workbook.xml", xml)
    return out.getvalue()


async def empty_inventory(db: Database) -> None:
    async with db.transaction() as session:
        for table in ASSET_TABLES:
            await session.execute(text(f"DELETE FROM {table}"))


async def inventory(api: GraphQL, token: str) -> dict:
    """One of everything, with every field set somewhere and some left empty."""
    env = await api.data(
        'mutation { createEnvironment(input: {name: "qa", color: "#123abc"}) { id } }',
        token=token,
    )
    assert env
    fra = await datacenter(
        api, token, name="fra1", location="Frankfurt", description="Cage 4,\nrow B"
    )
    await datacenter(api, token, name="ams2")
    web = await server(
        api,
        token,
        fra["id"],
        name="web-01",
        hostname="web-01.example.com",
        managementIp="10.0.0.1",
        publicIp="2001:db8::1",
        cpuCores=16,
        memoryGb=64,
        diskGb=500,
        os="Debian 12",
        status="MAINTENANCE",
        environment="qa",
        notes="racked 2026",
        tags=["edge", "linux"],
    )
    bare = await server(api, token, fra["id"], name="1234")
    formula = await server(api, token, fra["id"], name="=SUM(A1:A2)")
    box = await container(
        api,
        token,
        web["id"],
        name="nginx",
        image="nginx:1.27",
        cpuLimit="1.5",
        memoryLimitMb=512,
        environment="production",
        ports=[
            {"hostPort": 8080, "containerPort": 80, "protocol": "TCP"},
            {"hostPort": 5353, "containerPort": 53, "protocol": "UDP"},
        ],
    )
    await container(api, token, bare["id"], name="nginx", image="nginx:1.26")
    await service(
        api,
        token,
        box["id"],
        name="site",
        kind="WEB",
        port=80,
        healthCheckUrl="https://web-01.example.com/health",
    )
    held = await gpu(api, token, serial="GPU-0001", model="A100", memoryGb=80, serverId=web["id"])
    await gpu(api, token, serial="GPU-0002", model="L4")
    return {"web": web, "bare": bare, "formula": formula, "held": held}


async def test_export_then_import_into_an_empty_inventory_gives_the_same_workbook(
    api, people, db, tmp_path
):
    admin = people["admin"]
    made = await inventory(api, admin)
    await api.data(CLAIM, {"id": made["held"]["id"]}, token=people["mira"])
    first = await export(api, admin)

    sheets = cells(first)
    assert list(sheets) == list(HEADERS)
    assert {name: rows[0] for name, rows in sheets.items()} == HEADERS
    assert sheets["Datacenters"][1:] == [
        ["ams2", None, None],
        ["fra1", "Frankfurt", "Cage 4,\nrow B"],
    ]
    servers = {row[0]: row for row in sheets["Servers"][1:]}
    assert servers["web-01"] == [
        "web-01",
        "web-01.example.com",
        "10.0.0.1",
        "2001:db8::1",
        16,
        64,
        500,
        "Debian 12",
        "MAINTENANCE",
        "fra1",
        "qa",
        "racked 2026",
        "edge, linux",
    ]
    assert servers["=SUM(A1:A2)"][0] == "=SUM(A1:A2)"  # text, never a formula
    assert sheets["Containers"][1:] == [
        ["1234", "nginx", "nginx:1.26", None, None, None, "RUNNING", None],
        [
            "web-01",
            "nginx",
            "nginx:1.27",
            1.5,
            512,
            "8080:80/tcp, 5353:53/udp",
            "RUNNING",
            "production",
        ],
    ]
    assert sheets["GPUs"][1:] == [
        ["GPU-0001", "A100", 80, "web-01"],
        ["GPU-0002", "L4", None, None],
    ]

    await empty_inventory(db)
    assert await count(db, Server) == 0
    done = await import_workbook(api, admin, first)
    assert done["status"] == "succeeded", done
    result = done["importResult"]
    assert result["problems"] == []
    assert (result["dryRun"], result["updated"], result["unchanged"]) == (False, 0, 0)
    assert result["created"] == sum(len(rows) - 1 for rows in sheets.values())
    assert done["progress"] == 1.0
    assert await count(db, Gpu) == 2
    second = await export(api, admin)
    assert cells(second) == sheets

    again = await import_workbook(api, admin, second)
    assert again["importResult"]["unchanged"] == result["created"]
    assert (again["importResult"]["created"], again["importResult"]["updated"]) == (0, 0)

    office = shutil.which("libreoffice") or shutil.which("soffice")
    assert office, (
        "LibreOffice is needed (Debian package libreoffice-calc; tests/peers/system-tools)"
    )
    path = tmp_path / "assets.xlsx"
    path.write_bytes(second)
    converted = subprocess.run(
        [
            office,
            f"-env:UserInstallation=file://{tmp_path}/lo-profile",
            "--headless",
            "--convert-to",
            "csv",
            "--outdir",
            str(tmp_path / "csv"),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert converted.returncode == 0, converted.stderr
    rows = list(csv.reader((tmp_path / "csv" / "assets.csv").read_text().splitlines(True)))
    assert rows == [
        ["name", "location", "description"],
        ["ams2", "", ""],
        ["fra1", "Frankfurt", "Cage 4,\nrow B"],
    ]


async def test_an_import_updates_by_natural_key_and_is_audited_like_the_api(api, people, db):
    admin = people["admin"]
    made = await inventory(api, admin)
    data = cells(await export(api, admin))
    servers = [row for row in data["Servers"][1:] if row[0] == "web-01"]
    servers[0][4] = 32  # cpu_cores
    servers[0][12] = "edge"  # tags
    new = row("Servers", name="new-01", datacenter="ams2")
    before = await last_audit_id(db)
    done = await import_workbook(api, admin, workbook(Servers=[servers[0], new]), dry_run=False)
    assert done["status"] == "succeeded", done
    assert done["importResult"] == {
        "dryRun": False,
        "created": 1,
        "updated": 1,
        "unchanged": 0,
        "problems": [],
    }
    async with db.read() as session:
        web = await session.get(Server, int(made["web"]["id"]))
        assert (web.cpu_cores, web.version) == (32, made["web"]["version"] + 1)
        tags = await session.execute(select(ServerTag.tag).where(ServerTag.server_id == web.id))
        assert tags.scalars().all() == ["edge"]
        added = (await session.execute(select(Server).where(Server.name == "new-01"))).scalar_one()
        assert (added.status, added.version) == ("ACTIVE", 1)
        query = select(AuditEntry).where(AuditEntry.id > before).order_by(AuditEntry.id)
        entries = (await session.execute(query)).scalars().all()
    by_action = {entry.action: entry for entry in entries}
    assert set(by_action) == {"create", "update"}
    update = by_action["update"]
    assert (update.resource_type, update.resource_id, update.actor_username) == (
        "server",
        made["web"]["id"],
        "admin",
    )
    assert '"cpuCores": [16, 32]' in update.changes
    assert '"tags": [["edge", "linux"], ["edge"]]' in update.changes
    assert update.client_address == "127.0.0.1" and update.request_id


async def test_a_dry_run_counts_and_writes_nothing(api, people, db):
    admin = people["admin"]
    await inventory(api, admin)
    exported = await export(api, admin)
    data = cells(exported)
    data["Datacenters"][1][1] = "Amsterdam"  # ams2 gets a location
    data["Datacenters"].append(["lon1", "London", None])
    rows = {name: sheet[1:] for name, sheet in data.items()}
    audit_before = await count(db, AuditEntry)
    done = await import_workbook(api, admin, workbook(**rows), dry_run=True)
    assert done["status"] == "succeeded", done
    result = done["importResult"]
    total = sum(len(sheet) for sheet in rows.values())
    assert (result["dryRun"], result["created"], result["updated"]) == (True, 1, 1)
    assert result["unchanged"] == total - 2
    assert await count(db, Datacenter) == 2
    assert await count(db, AuditEntry) == audit_before
    assert cells(await export(api, admin)) == cells(exported)
    async with db.read() as session:
        ams = (
            await session.execute(select(Datacenter).where(Datacenter.name == "ams2"))
        ).scalar_one()
    assert ams.location is None


async def test_a_problem_anywhere_writes_nothing_and_names_sheet_row_and_column(api, people, db):
    admin = people["admin"]
    await inventory(api, admin)
    bad = workbook(
        Datacenters=[["lon1", "London", None]],
        Servers=[
            row("Servers", name="ok-01", cpu_cores=4, datacenter="fra1"),
            row(
                "Servers",
                name="bad-ip",
                management_ip="10.0.0.300",
                cpu_cores="four",
                status="RUNNING",
                datacenter="fra1",
            ),
            row("Servers", name="nowhere", datacenter="xyz9"),
            row("Servers", name="ok-01", datacenter="fra1"),
        ],
        Containers=[
            ["web-01", "dns", "coredns", None, None, "8080:53/tcp", None, None],
            ["web-01", "odd", "x", None, None, "eighty", None, "staging"],
        ],
        Services=[["web-01", "nope", "svc", "WEB", None, None, None]],
        GPUs=[["GPU-9", None, None, None]],
    )
    servers_before, audit_before = await count(db, Server), await count(db, AuditEntry)
    done = await import_workbook(api, admin, bad)
    assert done["status"] == "succeeded", done
    result = done["importResult"]
    assert (result["created"], result["updated"], result["unchanged"]) == (0, 0, 0)
    found = {(p["sheet"], p["row"], p["column"]): p["message"] for p in result["problems"]}
    assert set(found) == {
        ("Servers", 3, "management_ip"),
        ("Servers", 3, "cpu_cores"),
        ("Servers", 3, "status"),
        ("Servers", 4, "datacenter"),
        ("Servers", 5, "name"),
        ("Containers", 2, "ports"),
        ("Containers", 3, "ports"),
        ("Services", 2, "container"),
        ("GPUs", 2, "model"),
    }
    assert "is not an IPv4 or IPv6 address" in found[("Servers", 3, "management_ip")]
    assert found[("Servers", 3, "cpu_cores")] == "must be a whole number"
    assert "datacenter named 'xyz9'" in found[("Servers", 4, "datacenter")]
    assert found[("Servers", 5, "name")] == "the same name as row 2"
    assert "also published by the container 'nginx'" in found[("Containers", 2, "ports")]
    assert found[("GPUs", 2, "model")] == "is required"
    assert await count(db, Server) == servers_before
    assert await count(db, Datacenter) == 2
    assert await count(db, AuditEntry) == audit_before


async def test_bad_files_and_wrong_roles_are_refused(api, people, db):
    admin, mira = people["admin"], people["mira"]
    body = await start_import(api, admin, b"name,location\nfra1,Frankfurt\n")
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "file"}
    assert "not an .xlsx workbook" in error["message"]
    book = openpyxl.Workbook()
    book.active.title = "Servers"
    book.active.append(["name", "datacenter"])
    book.active.append(["web-02", "fra1"])
    out = io.BytesIO()
    book.save(out)
    lacking = await import_workbook(api, admin, out.getvalue())
    assert lacking["status"] == "succeeded"
    problems = lacking["importResult"]["problems"]
    assert {
        "sheet": "Servers",
        "row": 1,
        "column": "hostname",
        "message": "the header lacks this column",
    } in problems
    damaged = await import_workbook(api, admin, zipped_parts(b"<Types"))
    assert damaged["status"] == "failed"
    assert "could not be read as an .xlsx workbook" in damaged["error"]
    assert await count(db, Datacenter) == 0

    for token, code in ((mira, "FORBIDDEN"), ("", "UNAUTHENTICATED")):
        assert (await api.error(EXPORT, token=token))[0] == code
        body = await start_import(api, token, workbook())
        assert body["errors"][0]["extensions"]["code"] == code
    async with db.read() as session:
        assert (await session.execute(text("SELECT COUNT(*) FROM files"))).scalar_one() == 0


async def test_ten_thousand_servers_import_in_bulk(api, people, db):
    admin = people["admin"]
    datacenters = [[f"dc{d:02}", f"Site {d}", None] for d in range(10)]
    servers = [
        [
            f"srv-{n:05}",
            f"srv-{n:05}.example.com",
            f"10.{n // 65536}.{n // 256 % 256}.{n % 256}",
            None,
            8,
            32,
            500,
            "Debian 12",
            "ACTIVE",
            f"dc{n % 10:02}",
            "production",
            None,
            "linux, fleet",
        ]
        for n in range(10_000)
    ]
    data = workbook(Datacenters=datacenters, Servers=servers)
    started = time.monotonic()
    done = await import_workbook(api, admin, data)
    elapsed = time.monotonic() - started
    print(f"\n10,000-server import: {elapsed:.1f} s ({len(data) / 1024:.0f} KiB workbook)")
    assert done["status"] == "succeeded", done
    assert done["importResult"]["created"] == 10_010
    assert await count(db, Server) == 10_000
    assert await count(db, ServerTag) == 20_000
    assert await count(db, AuditEntry) >= 10_010
    assert elapsed < 120
    started = time.monotonic()
    again = await import_workbook(api, admin, data, dry_run=True)
    print(f"10,000-server dry run: {time.monotonic() - started:.1f} s")
    assert again["importResult"]["unchanged"] == 10_010
