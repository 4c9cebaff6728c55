"""Settings: environment > holdfast.toml > defaults; a bad value stops start-up with one line."""

import os
import subprocess
import sys

import pytest

from server.settings import SETTINGS, SettingsError, load_settings
from tests.conftest import ROOT


def test_defaults(tmp_path):
    settings = load_settings(environ={}, config_file=tmp_path / "missing.toml")
    assert settings.database_url == "sqlite+aiosqlite:///./holdfast.db"
    assert settings.redis_url is None
    assert settings.jwt_secret is None
    assert settings.access_token_ttl == 900
    assert settings.refresh_token_ttl == 30 * 86400
    assert settings.registration == "closed"
    assert settings.pinned == frozenset()


def test_environment_wins_over_the_file_which_wins_over_defaults(tmp_path):
    config = tmp_path / "holdfast.toml"
    config.write_text('access_token_ttl = "10m"\nregistration = "open"\nlog_level = "debug"\n')
    settings = load_settings(
        environ={
            "HOLDFAST_ACCESS_TOKEN_TTL": "1h",
            "HOLDFAST_CORS_ORIGINS": "https://a.example, http://b.example:8080/",
        },
        config_file=config,
    )
    assert settings.access_token_ttl == 3600
    assert settings.registration == "open"
    assert settings.log_level == "DEBUG"
    assert settings.cors_origins == ("https://a.example", "http://b.example:8080")
    assert settings.refresh_token_ttl == 30 * 86400
    assert settings.pinned == {"ACCESS_TOKEN_TTL", "CORS_ORIGINS"}


def test_the_config_file_can_be_named_by_the_environment(tmp_path):
    config = tmp_path / "other.toml"
    config.write_text('registration = "open"\n')
    assert load_settings(environ={"HOLDFAST_CONFIG": str(config)}).registration == "open"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://x", "HOLDFAST_DATABASE_URL"),
        ("REDIS_URL", "http://x", "HOLDFAST_REDIS_URL"),
        ("ACCESS_TOKEN_TTL", "soon", "HOLDFAST_ACCESS_TOKEN_TTL"),
        ("ACCESS_TOKEN_TTL", "0", "HOLDFAST_ACCESS_TOKEN_TTL"),
        ("REFRESH_TOKEN_TTL", "-5", "HOLDFAST_REFRESH_TOKEN_TTL"),
        ("REGISTRATION", "maybe", "HOLDFAST_REGISTRATION"),
        ("CORS_ORIGINS", "not a url", "HOLDFAST_CORS_ORIGINS"),
        ("LOG_LEVEL", "LOUD", "HOLDFAST_LOG_LEVEL"),
        ("INTROSPECTION", "perhaps", "HOLDFAST_INTROSPECTION"),
        ("MAX_QUERY_DEPTH", "deep", "HOLDFAST_MAX_QUERY_DEPTH"),
        ("LOGIN_RATE_LIMIT", "lots", "HOLDFAST_LOGIN_RATE_LIMIT"),
    ],
)
def test_a_bad_value_names_the_setting(tmp_path, name, value, expected):
    with pytest.raises(SettingsError) as error:
        load_settings(environ={f"HOLDFAST_{name}": value}, config_file=tmp_path / "none.toml")
    assert str(error.value).startswith(expected + ":")
    assert "\n" not in str(error.value)


def test_bad_values_in_the_file_and_unknown_keys(tmp_path):
    config = tmp_path / "holdfast.toml"
    config.write_text("max_aliases = -1\n")
    with pytest.raises(SettingsError, match=r"holdfast.toml: max_aliases: must be greater"):
        load_settings(environ={}, config_file=config)
    config.write_text("colour = 'blue'\n")
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        load_settings(environ={}, config_file=config)
    config.write_text("this is not toml\n")
    with pytest.raises(SettingsError, match="cannot read it"):
        load_settings(environ={}, config_file=config)


def test_secret_values_are_never_echoed(tmp_path):
    with pytest.raises(SettingsError) as error:
        load_settings(environ={"HOLDFAST_ADMIN_USERNAME": ""}, config_file=tmp_path / "x")
    assert "ADMIN_USERNAME" in str(error.value)
    secret_settings = [setting.name for setting in SETTINGS if setting.secret]
    assert {"JWT_SECRET", "ADMIN_PASSWORD"} <= set(secret_settings)
    settings = load_settings(
        environ={"HOLDFAST_JWT_SECRET": "sekrit-value-that-is-long-enough-to-sign"},
        config_file=tmp_path / "x",
    )
    assert "sekrit-value-that-is-long-enough-to-sign" not in repr(settings)


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("HOLDFAST_")}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env={**clean, "HOLDFAST_CONFIG": os.devnull, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_with_a_bad_setting_prints_one_line_and_no_traceback():
    result = run_cli("serve", "--port", "1", env={"HOLDFAST_ACCESS_TOKEN_TTL": "forever"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "HOLDFAST_ACCESS_TOKEN_TTL" in lines[0]
    assert "Traceback" not in result.stderr


def test_several_workers_without_redis_refuse_to_start():
    result = run_cli("serve", "--workers", "2", "--port", "1", env={})
    assert result.returncode == 2
    assert "HOLDFAST_REDIS_URL" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [("ADMIN_PASSWORD", "short"), ("ADMIN_USERNAME", "has space"), ("ADMIN_EMAIL", "nope")],
)
def test_serve_refuses_admin_settings_the_admin_could_not_have(name, value):
    result = run_cli("serve", "--port", "1", env={f"HOLDFAST_{name}": value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"HOLDFAST_{name}" in lines[0]
    assert value not in lines[0] or name != "ADMIN_PASSWORD"


def test_passwords_in_urls_are_never_echoed(tmp_path):
    with pytest.raises(SettingsError) as error:
        load_settings(
            environ={"HOLDFAST_DATABASE_URL": "postgresql://holdfast:S3cretPw@db/holdfast"},
            config_file=tmp_path / "none.toml",
        )
    assert "S3cretPw" not in str(error.value) and "***" in str(error.value)
    settings = load_settings(
        environ={
            "HOLDFAST_DATABASE_URL": "postgresql+asyncpg://holdfast:S3cretPw@db/holdfast",
            "HOLDFAST_REDIS_URL": "redis://:RedisPw@redis:6379/0",
        },
        config_file=tmp_path / "none.toml",
    )
    assert "S3cretPw" not in repr(settings) and "RedisPw" not in repr(settings)


def test_a_short_jwt_secret_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="HOLDFAST_JWT_SECRET: must be at least 32 bytes"):
        load_settings(environ={"HOLDFAST_JWT_SECRET": "x"}, config_file=tmp_path / "none.toml")
