"""Every table, so `Base.metadata` is complete for Alembic and tests."""

from db import identity, jobs, locks, projects, server_state
from db.base import Base

metadata = Base.metadata

__all__ = ["identity", "jobs", "locks", "metadata", "projects", "server_state"]
