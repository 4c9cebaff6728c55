"""Apply Alembic migrations from code, safely when several processes start at once."""

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url

from alembic import command
from db.engine import create_engine

ROOT = Path(__file__).resolve().parent.parent
MIGRATION_LOCK_KEY = 0x486F6C64  # "Hold"


def alembic_config() -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    return config


@contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    """Hold an exclusive lock on `<database>.migrate.lock` (SQLite files only)."""
    database = make_url(url).database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def _run(url: str, action) -> None:
    """Run `action(config)` on one connection, holding the cluster-wide migration lock.

    Alembic may commit between revisions, so the lock must outlive transactions: a session-level
    advisory lock on PostgreSQL, a lock file beside the database on SQLite.
    """
    engine = create_engine(url, pooled=False, foreign_keys=False)
    try:
        with _sqlite_file_lock(url) if engine.dialect.name == "sqlite" else nullcontext():
            async with engine.connect() as connection:
                postgres = connection.dialect.name == "postgresql"
                if postgres:
                    await connection.execute(
                        text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                    await connection.commit()

                def run(sync_connection) -> None:
                    config = alembic_config()
                    config.attributes["connection"] = sync_connection
                    action(config)

                try:
                    await connection.run_sync(run)
                    await connection.commit()
                finally:
                    if postgres:
                        await connection.execute(
                            text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
                        )
                        await connection.commit()
    finally:
        await engine.dispose()


async def upgrade(url: str, revision: str = "head") -> None:
    await _run(url, lambda config: command.upgrade(config, revision))


async def downgrade(url: str, revision: str) -> None:
    await _run(url, lambda config: command.downgrade(config, revision))


async def pending(url: str) -> bool:
    """True when the database is not at the newest revision."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    engine = create_engine(url, pooled=False)
    try:
        async with engine.connect() as connection:
            current = await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()
    return current != head
