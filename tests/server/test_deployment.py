"""What runs outside this machine is checked by reading it: compose.yaml, the Dockerfile, the
README's settings table and the CI script (no Docker engine runs here)."""

import re

import yaml

from server.settings import SETTINGS, load_settings
from tests.conftest import ROOT

DOCUMENTED = {f"HOLDFAST_{setting.name}" for setting in SETTINGS}


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_every_setting_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    rows = set(re.findall(r"^\| `(HOLDFAST_[A-Z_]+)` \|", readme, flags=re.MULTILINE))
    assert rows == DOCUMENTED


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split()[0:2] for line in first_block.strip().splitlines()] == [
        ["make", "run"],
        ["make", "test"],
    ]


def test_compose_api_uses_documented_settings_and_waits_for_healthy_peers():
    services = compose()["services"]
    api = services["api"]
    environment = api["environment"]
    assert set(environment) <= DOCUMENTED
    assert environment["HOLDFAST_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in environment["HOLDFAST_DATABASE_URL"]
    assert environment["HOLDFAST_REDIS_URL"].startswith("redis://redis:6379")
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "mail" in api["depends_on"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "ping" in services["redis"]["healthcheck"]["test"]
    assert api["build"] == "."


def test_compose_settings_are_valid_values():
    """Resolve ${VAR:-default} as compose would with nothing set, then load the settings."""
    resolved = {}
    for key, value in compose()["services"]["api"]["environment"].items():
        resolved[key] = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))
    settings = load_settings(environ={**resolved, "HOLDFAST_CONFIG": "/nonexistent"})
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.admin_password is None and settings.jwt_secret is None


def test_dockerfile_runs_the_server_on_all_interfaces_as_a_non_root_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]", dockerfile, flags=re.MULTILINE)
    assert "-c constraints.txt" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, flags=re.MULTILINE)
    assert '"serve", "--host", "0.0.0.0"' in dockerfile
    assert "/readyz" in dockerfile


def test_ci_runs_the_readme_test_command_on_both_backends():
    script = (ROOT / ".ci" / "run").read_text()
    assert script.count("make test") == 2
    assert "HOLDFAST_TEST_DATABASE_URL=" in script and "HOLDFAST_TEST_REDIS_URL=" in script
    assert "make lint" in script
    assert "make test" in (ROOT / "README.md").read_text()
