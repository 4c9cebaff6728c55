"""`holdfast export-schema` and `holdfast migrate`; the committed schema.graphql is current and
keeps the client contract."""

import filecmp
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.server.test_settings import run_cli

CONTRACT = ROOT / "tests" / "shared"
"""A copy of ../shared's contract and its checker, so any clone can run the contract test."""
SHARED = ROOT.parent / "shared"
CONTRACT_CHECK = CONTRACT / "tools" / "check_contract.py"
CONTRACT_FILES = [
    "tools/check_contract.py",
    "contract/schema.graphql",
    *(
        f"contract/areas/{path.name}"
        for path in sorted((CONTRACT / "contract" / "areas").glob("*"))
    ),
]


def test_committed_schema_matches_the_code():
    result = run_cli("export-schema", env={})
    assert result.returncode == 0, result.stderr
    committed = (ROOT / "schema.graphql").read_text()
    assert result.stdout == committed, "schema.graphql is stale: run `make schema`"


def test_schema_honours_the_whole_client_contract():
    result = subprocess.run(
        [sys.executable, str(CONTRACT_CHECK), str(ROOT / "schema.graphql")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout
    assert "contract: 0 missing, 0 different -> OK" in result.stdout


BUILT_AREAS = ("assets", "parts", "bookings")
"""Areas whose contract file (contract/areas/<area>.graphql) the schema honours in full."""


@pytest.mark.parametrize("area", BUILT_AREAS)
def test_schema_honours_each_built_area_s_contract(area):
    result = subprocess.run(
        [sys.executable, str(CONTRACT_CHECK), "--area", area, str(ROOT / "schema.graphql")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout
    assert "contract: 0 missing, 0 different -> OK" in result.stdout


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared is not beside this clone")
def test_the_copy_of_the_contract_is_the_shared_one():
    """Where ../shared is present, the copy in tests/shared is exactly it (new area files
    included), so the contract test above checks what clients depend on."""
    shared_areas = {path.name for path in (SHARED / "contract" / "areas").glob("*.graphql")}
    copied_areas = {path.name for path in (CONTRACT / "contract" / "areas").glob("*.graphql")}
    assert shared_areas == copied_areas, "copy ../shared/contract/areas into tests/shared"
    stale = [
        name
        for name in CONTRACT_FILES
        if not filecmp.cmp(SHARED / name, CONTRACT / name, shallow=False)
    ]
    assert stale == [], f"tests/shared is stale, copy these from ../shared: {stale}"


def test_migrate_brings_an_empty_database_to_head(fresh_database):
    url = fresh_database()
    result = run_cli("migrate", env={"HOLDFAST_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "database at head" in result.stdout
    import asyncio

    from db import migrations

    assert asyncio.run(migrations.pending(url)) is False
