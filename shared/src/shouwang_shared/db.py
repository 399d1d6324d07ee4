"""Database engine and session helpers (SQLAlchemy async with asyncpg)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import await_


def make_engine(database_url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """An async engine that checks connections before use, so it recovers after a database restart.

    Its errors name the statement but never the values bound to it (phones, names, ciphertexts), wherever they are logged.
    """
    engine = create_async_engine(
        database_url,
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_use_lifo=True,  # a request gets the connection used last: its backend and prepared statements are hot
        pool_recycle=1800,
        echo=echo,
        connect_args={"timeout": 5, "command_timeout": 60},
    )
    if engine.dialect.driver == "asyncpg":
        engine.dialect.do_ping = _ping_in_one_round_trip  # type: ignore[method-assign]
    return engine


def _ping_in_one_round_trip(dbapi_connection: Any) -> bool:
    """The pre-ping as one `;` round trip (SQLAlchemy's wraps it in BEGIN/ROLLBACK for pgbouncer, unused here)."""
    try:
        await_(dbapi_connection.driver_connection.fetchrow(";"))
    except Exception as error:  # noqa: BLE001 - translated as SQLAlchemy's own ping does, so a dead connection is replaced
        dbapi_connection._handle_exception(error)
    return True


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory whose objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error."""
    async with sessions() as session:
        async with session.begin():
            yield session


async def raw_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under a session, for COPY and other bulk work in the same transaction."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter opens its transaction lazily, on the first statement it runs;
        # run one so that raw work below belongs to the session's transaction.
        await conn.exec_driver_sql("SELECT 1")
    return driver


async def ping(engine: AsyncEngine) -> bool:
    """True when the database answers a trivial query."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("select 1"))
        return True
    except Exception:  # noqa: BLE001 - readiness reports any failure as not ready
        return False


TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    ConnectionError,
    OSError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.AdminShutdownError,
)


def is_transient_db_error(exc: BaseException) -> bool:
    """True for failures worth retrying: lost connections, shutdowns, serialization conflicts."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, TRANSIENT_DB_ERRORS):
        return True
    orig: Any = getattr(exc, "orig", None)
    cause = getattr(orig, "__cause__", None)
    return isinstance(orig, TRANSIENT_DB_ERRORS) or isinstance(cause, TRANSIENT_DB_ERRORS)


class StatementPool:
    """Plain asyncpg connections for the hot paths that need one statement: a round trip each, in autocommit.

    The session machinery costs four round trips around a statement (pre-ping, BEGIN, the statement, COMMIT);
    a use case whose writes fit in one statement (a CTE inserting the row and its outbox event) is just as
    atomic run alone, and on this machine each round trip is CPU on both ends. Connections carry no session
    state (no SET, LISTEN or session locks on them), so the pool hands them back without a reset query.
    A connection found closed before a statement was sent (the database restarted while it sat idle) is
    replaced and the statement sent once more; a connection lost mid-statement is the caller's error, as
    the statement may have committed.
    """

    def __init__(self, database_url: str, *, max_size: int = 10, min_size: int = 2) -> None:
        self.dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.max_size = max_size
        self.min_size = min(min_size, max_size)
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        """Open the pool (its first connections at once, so the first requests do not pay for them)."""
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=self.min_size, max_size=self.max_size, timeout=5, command_timeout=60,
                reset=_no_session_state, max_inactive_connection_lifetime=300,
            )

    async def close(self) -> None:
        """Close every connection."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def started(self) -> bool:
        """True once `start` has opened the pool (and until `close`)."""
        return self._pool is not None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection for a few statements, each its own transaction unless the caller opens one."""
        if self._pool is None:
            raise ConnectionError("the database is not connected yet")
        async with self._pool.acquire() as conn:
            yield conn

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """Run one statement and return its first row."""
        return await self._once_more_if_closed("fetchrow", query, args)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Run one statement and return its rows."""
        return await self._once_more_if_closed("fetch", query, args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        """Run one statement and return the first column of its first row."""
        return await self._once_more_if_closed("fetchval", query, args)

    async def _once_more_if_closed(self, method: str, query: str, args: tuple) -> Any:
        for attempt in (1, 2):
            async with self.connection() as conn:
                if conn.is_closed() and attempt == 1:
                    continue
                try:
                    return await getattr(conn, method)(query, *args)
                except asyncpg.exceptions.InterfaceError as exc:
                    if attempt == 2 or "closed" not in str(exc):
                        raise
        raise ConnectionError("no open database connection")


async def _no_session_state(conn: asyncpg.Connection) -> None:
    """Pool reset hook: the hot paths leave no session state behind; only a transaction left open is rolled back."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")
