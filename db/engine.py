"""Engine and transactions for both dialects: SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

SQLITE_BUSY_TIMEOUT_SECONDS = 30


def _use_wal(cursor) -> None:
    """Switch a database file to WAL once (it stays so). Switching needs the file to itself and
    ignores the busy timeout, so a process that starts beside another retries for a while."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode")
            if cursor.fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


DEFAULT_POOL_SIZE = 16


def create_engine(
    url: str,
    *,
    pooled: bool = True,
    read_only: bool = False,
    pool_size: int = DEFAULT_POOL_SIZE,
    foreign_keys: bool = True,
) -> AsyncEngine:
    """An engine with the dialect's settings for safe concurrent writers.

    SQLite runs in WAL mode and every transaction starts with `BEGIN IMMEDIATE`, so writers queue
    on the database lock instead of failing when a read transaction tries to upgrade. A
    `read_only` SQLite engine begins with a plain `BEGIN`: WAL readers never wait for writers.
    Migrations run without `foreign_keys`: Alembic's batch mode rebuilds a table by dropping
    it, and a drop with foreign keys on deletes the rows that refer to it.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            **({} if pooled else {"poolclass": NullPool}),
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            _use_wal(cursor)
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection) -> None:
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    # Connections beyond pool_size are opened per checkout and closed after: under load that
    # churn (a TCP and TLS attempt, authentication) cost more than the queries, so the pool keeps
    # enough for the usual concurrency and allows as many again for bursts. No pre-ping: with
    # asyncpg it is three round trips per checkout; a connection the server dropped fails its
    # statement once and the pool replaces it.
    return create_async_engine(
        url,
        **(
            {
                "pool_size": pool_size,
                "max_overflow": pool_size,
                "pool_timeout": 60,
                "pool_recycle": 1800,
            }
            if pooled
            else {"poolclass": NullPool}
        ),
    )


@dataclass(frozen=True)
class _Compiled:
    """A statement as SQL for asyncpg itself, with the names of its $1, $2, … in order."""

    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, statement, dialect) -> _Compiled:
        compiled = statement.compile(dialect=dialect)
        sql = compiled.string
        names = [name for name in compiled.positiontup if not compiled.binds[name].expanding]
        for name, bind in compiled.binds.items():
            if bind.expanding:  # `IN (…a list…)` becomes `IN (SELECT unnest($n::type[]))`
                names.append(name)
                element = bind.type.compile(dialect=dialect)
                sql = sql.replace(
                    f"__[POSTCOMPILE_{name}]", f"SELECT unnest(${len(names)}::{element}[])"
                )
        return cls(sql, tuple(names))


class Database:
    """The process's connection pool and the one way to run a transaction."""

    def __init__(self, url: str, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        self.engine = create_engine(url, pool_size=pool_size)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read_engine = (
            create_engine(url, read_only=True) if self.dialect == "sqlite" else self.engine
        )
        self._read_sessions = async_sessionmaker(self._read_engine, expire_on_commit=False)
        self._compiled: dict[int, tuple[Any, _Compiled]] = {}

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """Commit when the block ends normally, roll back when it raises."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection on which each statement is its own transaction (PostgreSQL's hot writes:
        a row a statement locks is held only while the database runs it)."""
        async with self.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection

    async def fetch(self, statement, values: dict[str, Any]) -> list:
        """PostgreSQL: run a statement built once (bound parameters only) in autocommit,
        through asyncpg itself; for small hot statements SQLAlchemy's execution and result
        machinery cost more than the query. Rows are asyncpg records."""
        compiled = self._compiled.get(id(statement))
        if compiled is None or compiled[0] is not statement:
            compiled = self._compiled[id(statement)] = (
                statement,
                _Compiled.of(statement, self.engine.dialect),
            )
        sql = compiled[1]
        async with self.autocommit() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            return await driver.fetch(sql.sql, *(values[name] for name in sql.names))

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A transaction that only reads (on SQLite it takes no write lock)."""
        async with self._read_sessions() as session, session.begin():
            yield session

    @property
    def engines(self) -> tuple[AsyncEngine, ...]:
        """The engines statements run on (SQLite reads have one of their own)."""
        if self._read_engine is self.engine:
            return (self.engine,)
        return (self.engine, self._read_engine)

    async def ping(self) -> None:
        async with self._read_engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._read_engine is not self.engine:
            await self._read_engine.dispose()


async def try_cluster_lock(session: AsyncSession, name: str) -> bool:
    """Take a lock named `name` for this transaction if no other process holds it.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: the transaction already holds the
    database's write lock, which excludes every other process.
    """
    if session.bind.dialect.name != "postgresql":
        return True
    result = await session.execute(
        text("SELECT pg_try_advisory_xact_lock(hashtext(:name))"), {"name": name}
    )
    return bool(result.scalar_one())
