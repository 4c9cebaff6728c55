"""Alembic environment: async engines, batch mode so SQLite ALTERs work.

`db.migrations` passes an open connection in `config.attributes["connection"]`; the `alembic`
command line opens its own from `HOLDFAST_DATABASE_URL`.
"""

import asyncio

from alembic import context
from db.engine import create_engine
from db.models import metadata
from server.settings import load_settings


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_with_new_connection() -> None:
    engine = create_engine(load_settings().database_url, pooled=False)
    async with engine.connect() as connection:
        await connection.run_sync(run_migrations)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported")

connection = context.config.attributes.get("connection")
if connection is None:
    asyncio.run(run_with_new_connection())
else:
    run_migrations(connection)
