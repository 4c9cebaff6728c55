"""`holdfast export-schema` and `holdfast migrate`; the committed schema.graphql is current and
keeps the client contract."""

import subprocess
import sys

from tests.conftest import ROOT
from tests.server.test_settings import run_cli

CONTRACT_CHECK = ROOT.parent / "shared" / "tools" / "check_contract.py"


def test_committed_schema_matches_the_code():
    result = run_cli("export-schema", env={})
    assert result.returncode == 0, result.stderr
    committed = (ROOT / "schema.graphql").read_text()
    assert result.stdout == committed, "schema.graphql is stale: run `make schema`"


def test_schema_honours_the_whole_client_contract():
    if not CONTRACT_CHECK.exists():
        raise AssertionError(f"the contract checker is missing: {CONTRACT_CHECK}")
    result = subprocess.run(
        [sys.executable, str(CONTRACT_CHECK), str(ROOT / "schema.graphql")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout
    assert "contract: 0 missing, 0 different -> OK" in result.stdout


def test_migrate_brings_an_empty_database_to_head(fresh_database):
    url = fresh_database()
    result = run_cli("migrate", env={"HOLDFAST_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "database at head" in result.stdout
    import asyncio

    from db import migrations

    assert asyncio.run(migrations.pending(url)) is False
