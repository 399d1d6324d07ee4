"""Database engine and session helpers (SQLModel on SQLAlchemy async with asyncpg)."""

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
    """An async engine that checks connections before use, so it recovers after a database restart."""
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
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
