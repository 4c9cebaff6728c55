"""Every table, so `Base.metadata` is complete for Alembic and tests."""

from db import (
    assets,
    audit,
    files,
    identity,
    jobs,
    locks,
    notify,
    projects,
    server_state,
    settings,
    streams,
)
from db.base import Base

metadata = Base.metadata

__all__ = [
    "assets",
    "audit",
    "files",
    "identity",
    "jobs",
    "locks",
    "metadata",
    "notify",
    "projects",
    "server_state",
    "settings",
    "streams",
]
