"""Process settings: environment variables `HOLDFAST_*` > `holdfast.toml` > defaults.

Every setting is declared once in `SETTINGS`; the README's table is checked against it by a test.
A bad value raises `SettingsError` with one line that names the setting.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "HOLDFAST_"
DEFAULT_CONFIG_FILE = "holdfast.toml"


class SettingsError(Exception):
    """A setting has a value that cannot be used; the message names it."""


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: Any) -> int:
    """Seconds, from an integer or a string such as `900`, `15m`, `12h`, `30d`."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 900, 15m, 12h or 30d")
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError("expected a duration such as 900, 15m, 12h or 30d")
        seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


def _whole_number(minimum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("expected a whole number")
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValueError("expected a whole number") from None
        if number < minimum:
            raise ValueError(
                "must be greater than zero" if minimum == 1 else "must not be negative"
            )
        return number

    return parse


_positive_int = _whole_number(1)
_non_negative_int = _whole_number(0)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _optional_text(value: Any) -> str | None:
    text = str(value).strip()
    return text or None


def _text(value: Any) -> str:
    return str(value).strip()


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return text

    return parse


_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def hide_password(url: str) -> str:
    return _URL_PASSWORD.sub(r"\1***@", url)


def _jwt_secret(value: Any) -> str | None:
    text = str(value).strip()
    if text and len(text.encode()) < 32:
        raise ValueError("must be at least 32 bytes long")
    return text or None


def _database_url(value: Any) -> str:
    text = str(value).strip()
    if not text.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ValueError("expected a sqlite+aiosqlite:// or postgresql+asyncpg:// URL")
    return text


def _redis_url(value: Any) -> str | None:
    text = str(value).strip()
    if not text:
        return None
    if not text.startswith(("redis://", "rediss://")):
        raise ValueError("expected a redis:// or rediss:// URL")
    return text


def _origins(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value).split(",")
    origins = tuple(str(item).strip().rstrip("/") for item in items if str(item).strip())
    for origin in origins:
        if origin != "*" and not re.match(r"^https?://[^/\s]+$", origin):
            raise ValueError(f"{origin!r} is not an origin such as https://board.example.com")
    return origins


def _networks(value: Any) -> tuple[str, ...]:
    """Addresses or CIDR networks, comma-separated (or a TOML list), normalised."""
    items = value if isinstance(value, list) else str(value).split(",")
    networks = []
    for item in (str(item).strip() for item in items):
        if not item:
            continue
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network (10.0.0.0/8)") from None
    return tuple(networks)


def _rate(value: Any) -> str:
    from limits import parse_many

    text = str(value).strip()
    try:
        parse_many(text)
    except ValueError:
        raise ValueError("expected a rate such as 10/minute or 5/minute;100/hour") from None
    return text


_SIZE = re.compile(r"^\s*(\d+)\s*(|b|kib|mib|gib)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def _byte_size(value: Any) -> int:
    """Bytes, from an integer or a string such as `20971520` or `20MiB`."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 20971520 or 20MiB")
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError("expected a size such as 20971520 or 20MiB")
    size = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if size <= 0:
        raise ValueError("must be greater than zero")
    return size


def _log_level(value: Any) -> str:
    text = str(value).strip().upper()
    if text not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return text


@dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATABASE_URL",
        _database_url,
        "sqlite+aiosqlite:///./holdfast.db",
        "Database: an SQLite file (embedded default) or PostgreSQL.",
    ),
    Setting(
        "DATABASE_POOL_SIZE",
        _positive_int,
        16,
        "Database connections each process keeps open; as many more are opened for bursts.",
    ),
    Setting(
        "REDIS_URL",
        _redis_url,
        None,
        "Redis for live events and rate limits across replicas; unset = in-process.",
    ),
    Setting(
        "BUS",
        _choice("auto", "memory", "redis", "postgres"),
        "auto",
        "Where live events travel between replicas: `redis`, `postgres` (LISTEN/NOTIFY on the "
        "database), `memory` (one process); `auto` = redis when REDIS_URL is set, else memory.",
    ),
    Setting(
        "REDIS_PREFIX",
        _text,
        "holdfast",
        "Prefix of every Redis key and channel, so deployments can share one Redis.",
    ),
    Setting(
        "JWT_SECRET",
        _jwt_secret,
        None,
        "Key that signs access tokens; unset = generated once and kept in the database.",
        secret=True,
    ),
    Setting("ACCESS_TOKEN_TTL", _duration, 900, "Lifetime of an access token (900, 15m, 1h…)."),
    Setting("REFRESH_TOKEN_TTL", _duration, 30 * 86400, "Lifetime of a refresh token."),
    Setting("ADMIN_USERNAME", _text, "admin", "Username of the admin created on first start."),
    Setting(
        "ADMIN_PASSWORD",
        _optional_text,
        None,
        "Password of that admin; unset = a random one, printed once.",
        secret=True,
    ),
    Setting("ADMIN_EMAIL", _text, "admin@localhost", "Email of that admin."),
    Setting(
        "REGISTRATION",
        _choice("open", "closed"),
        "closed",
        "`open` lets anyone register an account; `closed` leaves it to admins.",
    ),
    Setting(
        "CORS_ORIGINS",
        _origins,
        (),
        "Comma-separated browser origins allowed to call the API (`*` for any).",
    ),
    Setting(
        "TRUSTED_PROXIES",
        _networks,
        (),
        "Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For is "
        "believed; empty = the direct peer is the client.",
    ),
    Setting("LOG_LEVEL", _log_level, "INFO", "DEBUG, INFO, WARNING, ERROR or CRITICAL."),
    Setting("INTROSPECTION", _boolean, True, "Allow GraphQL introspection (GraphiQL needs it)."),
    Setting("MAX_QUERY_DEPTH", _positive_int, 12, "Deepest selection a query may nest."),
    Setting("MAX_ALIASES", _positive_int, 30, "Most aliases one document may use."),
    Setting("MAX_TOKENS", _positive_int, 2000, "Most lexer tokens one document may have."),
    Setting(
        "LOGIN_RATE_LIMIT",
        _rate,
        "10/minute",
        "Failed sign-ins allowed per account (then RATE_LIMITED until the window ends).",
    ),
    Setting(
        "LOGIN_ADDRESS_RATE_LIMIT",
        _rate,
        "50/minute",
        "Failed sign-ins allowed per client address, over all accounts; successes never count.",
    ),
    Setting("PASSWORD_HASH_TIME_COST", _positive_int, 3, "Argon2id passes per password hash."),
    Setting("PASSWORD_HASH_MEMORY_KIB", _positive_int, 65536, "Argon2id memory per hash, KiB."),
    Setting(
        "EVENT_RETENTION",
        _duration,
        30 * 86400,
        "How long lock events are kept for `lockHistory` and `since` replays.",
    ),
    Setting(
        "AUDIT_RETENTION_DAYS",
        _non_negative_int,
        365,
        "Days the audit log keeps an entry; 0 = forever (apart from event retention).",
    ),
    Setting(
        "MAX_ACTIVE_PARKINGS_PER_USER",
        _positive_int,
        1,
        "How many cars one user may have parked at once.",
    ),
    Setting(
        "PARKING_RESERVATION_GRACE_MINUTES",
        _non_negative_int,
        15,
        "How long after its start an unused spot reservation expires.",
    ),
    Setting(
        "PARKING_REMINDER_DAYS",
        _non_negative_int,
        14,
        "Remind users who have not parked for this many days (0 = never).",
    ),
    Setting(
        "EVENT_DEFAULT_MINUTES",
        _positive_int,
        120,
        "How long an event without an end blocks its venue, in minutes.",
    ),
    Setting(
        "LOCK_AUTO_RELEASE_HOURS",
        _non_negative_int,
        0,
        "Release locks held longer than this many hours as EXPIRED; 0 = off.",
    ),
    Setting(
        "LOCK_EXPIRY_INTERVAL",
        _duration,
        15,
        "How often the cluster checks for expired locks (once per cluster, not per replica).",
    ),
    Setting(
        "SUBSCRIBER_QUEUE_SIZE",
        _positive_int,
        1000,
        "Events a websocket subscriber may fall behind before it is cut off to reconnect.",
    ),
    Setting(
        "LIVE_RESYNC_INTERVAL",
        _duration,
        2,
        "How often a quiet live feed asks the database for events the bus lost.",
    ),
    Setting(
        "LOCK_EXPIRY_WARNING_MINUTES",
        _non_negative_int,
        10,
        "Mail holders this many minutes before their lock expires; 0 = never.",
    ),
    Setting(
        "LOCK_ALERTS",
        _choice("none", "watchers", "everyone"),
        "watchers",
        "Who is mailed when a lock is taken or released: nobody, watchers of the path, everyone.",
    ),
    Setting(
        "FORCE_RELEASE_POLICY",
        _choice("admins", "everyone"),
        "admins",
        "Who may force-release another's lock in every project (a project may allow everyone).",
    ),
    Setting(
        "SMTP_HOST",
        _optional_text,
        None,
        "Mail server; unset = no mail is sent (messages are kept as SKIPPED).",
    ),
    Setting("SMTP_PORT", _positive_int, 587, "Mail server port."),
    Setting("SMTP_USERNAME", _optional_text, None, "Mail server login, if it needs one."),
    Setting("SMTP_PASSWORD", _optional_text, None, "Mail server password.", secret=True),
    Setting(
        "SMTP_TLS",
        _choice("none", "starttls", "tls"),
        "starttls",
        "`none`, `starttls` or `tls` (implicit TLS, usually port 465).",
    ),
    Setting("MAIL_FROM", _text, "holdfast@localhost", "Sender address of Holdfast's mail."),
    Setting(
        "PUBLIC_URL",
        _text,
        "http://127.0.0.1:8000",
        "Where people reach this server; links in mail point here.",
    ),
    Setting(
        "MAX_UPLOAD_BYTES",
        _byte_size,
        64 * 1024**2,
        "Largest multipart request (a file upload) accepted, in bytes or e.g. `64MiB`.",
    ),
    Setting(
        "MAX_PART_FILE_BYTES",
        _byte_size,
        50 * 1024**2,
        "Largest file uploaded to a part (BAD_USER_INPUT); no request is read past "
        "MAX_UPLOAD_BYTES (413), so that one must be larger.",
    ),
    Setting(
        "DATA_DIR",
        _text,
        "./data",
        "Directory of stored files (parts' uploads and 3D models); shared by all replicas.",
    ),
    Setting(
        "STEP_CONVERSION_TIMEOUT",
        _duration,
        120,
        "Longest a STEP → GLB conversion may run before it is stopped and marked FAILED.",
    ),
    Setting(
        "DOWNLOAD_TTL",
        _duration,
        900,
        "How long a download link (the URL is the credential) works after it is handed out.",
    ),
    Setting(
        "JOB_FILE_RETENTION",
        _duration,
        86400,
        "How long files jobs make or read (exports, uploaded imports) are kept.",
    ),
    Setting(
        "RUN_JOBS",
        _boolean,
        True,
        "`holdfast serve` runs background jobs; set false where `holdfast worker` does.",
    ),
    Setting("MIGRATE_ON_START", _boolean, True, "`holdfast serve` applies pending migrations."),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Settings:
    database_url: str = field(repr=False)
    database_pool_size: int
    redis_url: str | None = field(repr=False)
    bus: str
    redis_prefix: str
    jwt_secret: str | None = field(repr=False)
    access_token_ttl: int
    refresh_token_ttl: int
    admin_username: str
    admin_password: str | None = field(repr=False)
    admin_email: str
    registration: str
    cors_origins: tuple[str, ...]
    trusted_proxies: tuple[str, ...]
    log_level: str
    introspection: bool
    max_query_depth: int
    max_aliases: int
    max_tokens: int
    login_rate_limit: str
    login_address_rate_limit: str
    password_hash_time_cost: int
    password_hash_memory_kib: int
    event_retention: int
    audit_retention_days: int
    event_default_minutes: int
    max_active_parkings_per_user: int
    parking_reservation_grace_minutes: int
    parking_reminder_days: int
    lock_auto_release_hours: int
    lock_expiry_interval: int
    subscriber_queue_size: int
    live_resync_interval: int
    lock_expiry_warning_minutes: int
    lock_alerts: str
    force_release_policy: str
    smtp_host: str | None
    smtp_port: int
    smtp_username: str | None
    smtp_password: str | None = field(repr=False)
    smtp_tls: str
    mail_from: str
    public_url: str
    max_upload_bytes: int
    max_part_file_bytes: int
    data_dir: str
    step_conversion_timeout: int
    download_ttl: int
    job_file_retention: int
    run_jobs: bool
    migrate_on_start: bool
    pinned: frozenset[str] = frozenset()
    """Names of the settings given by the environment."""

    @property
    def bus_url(self) -> str | None:
        """Where the event bus connects (None: in this process only)."""
        kind = self.bus if self.bus != "auto" else ("redis" if self.redis_url else "memory")
        if kind == "redis":
            return self.redis_url
        if kind == "postgres":
            return self.database_url
        return None

    def replace(self, **changes: Any) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: str | Path | None = None
) -> Settings:
    """Read settings; `HOLDFAST_CONFIG` names the TOML file (default `./holdfast.toml`)."""
    environ = os.environ if environ is None else environ
    path = Path(config_file or environ.get(f"{ENV_PREFIX}CONFIG", DEFAULT_CONFIG_FILE))
    from_file: dict[str, Any] = {}
    if path.is_file():
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise SettingsError(f"{path}: cannot read it: {error}") from None
        for key, value in raw.items():
            name = key.upper()
            if name not in _BY_NAME:
                raise SettingsError(f"{path}: unknown setting {key!r}")
            from_file[name] = value

    values: dict[str, Any] = {}
    pinned = set()
    for setting in SETTINGS:
        env_name = ENV_PREFIX + setting.name
        if env_name in environ:
            raw_value, source = environ[env_name], env_name
            pinned.add(setting.name)
        elif setting.name in from_file:
            raw_value, source = from_file[setting.name], f"{path}: {setting.name.lower()}"
        else:
            values[setting.name.lower()] = setting.default
            continue
        try:
            values[setting.name.lower()] = setting.parse(raw_value)
        except ValueError as error:
            shown = "(hidden)" if setting.secret else repr(hide_password(str(raw_value)))
            raise SettingsError(f"{source}: {error} (got {shown})") from None
    if not values["admin_username"]:
        raise SettingsError(f"{ENV_PREFIX}ADMIN_USERNAME: must not be empty")
    if values["bus"] == "redis" and not values["redis_url"]:
        raise SettingsError(f"{ENV_PREFIX}BUS: redis needs {ENV_PREFIX}REDIS_URL")
    if values["bus"] == "postgres" and not values["database_url"].startswith("postgresql"):
        raise SettingsError(f"{ENV_PREFIX}BUS: postgres needs a PostgreSQL DATABASE_URL")
    if not values["data_dir"]:
        raise SettingsError(f"{ENV_PREFIX}DATA_DIR: must not be empty")
    return Settings(**values, pinned=frozenset(pinned))
