"""Apply Alembic migrations from code, safely when several processes start at once."""

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from alembic import command
from db.engine import create_engine

ROOT = Path(__file__).resolve().parent.parent
MIGRATION_LOCK_KEY = 0x486F6C64  # "Hold"


def alembic_config() -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    return config


async def _run(url: str, action) -> None:
    """Run `action(config)` on one connection, holding the cluster-wide migration lock.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: the engine begins every transaction
    with BEGIN IMMEDIATE, which already excludes every other writer.
    """
    engine = create_engine(url, pooled=False)
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )

            def run(sync_connection) -> None:
                config = alembic_config()
                config.attributes["connection"] = sync_connection
                action(config)

            await connection.run_sync(run)
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
