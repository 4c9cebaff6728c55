"""Every table, so `Base.metadata` is complete for Alembic and tests."""

from db import (
    assets,
    audit,
    files,
    identity,
    jobs,
    locks,
    notify,
    parking,
    parts,
    projects,
    server_state,
    settings,
    streams,
    venues,
)
from db.base import Base
from db.parts import files as part_files

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
    "parking",
    "part_files",
    "parts",
    "projects",
    "server_state",
    "settings",
    "streams",
    "venues",
]
