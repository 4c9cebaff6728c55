"""Checking an asset workbook's rows without a database: cells read as a spreadsheet keeps
them, the API's checks, references across sheets, ports across containers."""

from domain.assets.workbook.importing import plan
from domain.assets.workbook.sheets import SHEETS, Stored
from domain.workbooks import ImportProblem, ReadWorkbook, SheetRows

EMPTY = Stored(rows={sheet.kind: {} for sheet in SHEETS}, records={}, tags={}, ports={})


def read(**sheets: list[dict]) -> ReadWorkbook:
    return ReadWorkbook(
        sheets={
            name: SheetRows(name, [(number, row) for number, row in enumerate(rows, start=2)])
            for name, rows in sheets.items()
        },
        problems=[],
    )


def test_cells_are_read_as_a_spreadsheet_keeps_them():
    planned, problems = plan(
        read(
            Datacenters=[{"name": 1234}],
            Servers=[
                {"name": 42.0, "datacenter": 1234, "cpu_cores": "16", "memory_gb": 64.0},
                {"name": "b", "datacenter": "1234", "disk_gb": 1.5, "status": "active"},
            ],
        ),
        EMPTY,
    )
    assert planned is None
    assert problems == [ImportProblem("Servers", 3, "disk_gb", "must be a whole number")]
    planned, problems = plan(
        read(
            Datacenters=[{"name": 1234}],
            Servers=[{"name": 42.0, "datacenter": 1234, "cpu_cores": "16", "tags": "B, a,b"}],
        ),
        EMPTY,
    )
    assert problems == []
    values = planned.wanted["server"]["42"].values
    assert (values["datacenter"], values["cpu_cores"], values["status"]) == ("1234", 16, "ACTIVE")
    assert values["tags"] == ["a", "b"]
    assert (planned.create["server"], planned.create["datacenter"]) == (["42"], ["1234"])


def test_references_and_ports_are_checked_across_sheets():
    _, problems = plan(
        read(
            Datacenters=[{"name": "fra1"}],
            Servers=[{"name": "web", "datacenter": "fra1", "environment": "prod"}],
            Containers=[
                {"server": "web", "name": "a", "image": "x", "ports": "80:80, 53:53/udp"},
                {"server": "web", "name": "b", "image": "x", "ports": "80:8080/tcp"},
                {"server": "db", "name": "c", "image": "x"},
            ],
            Services=[
                {"server": "web", "container": "z", "name": "s", "kind": "web"},
                {"server": "db", "container": "c", "name": "s", "kind": "WEB"},
            ],
        ),
        EMPTY,
    )
    assert [(p.sheet, p.row, p.column) for p in problems] == [
        ("Servers", 2, "environment"),
        ("Containers", 4, "server"),
        ("Services", 2, "container"),
        ("Services", 3, "server"),
        ("Containers", 3, "ports"),
    ]
    assert problems[-1].message == (
        "host port 80/tcp is also published by the container 'a' on the server 'web'"
    )
