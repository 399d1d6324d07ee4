"""Versioned, forward-only schema migrations per service (a small documented Alembic equivalent).

A service keeps ordered files in its `migrations/` package: `0001_name.sql` (plain SQL) or
`0002_name.py` (an `async def upgrade(conn)` taking an SQLAlchemy AsyncConnection). Applied
versions are recorded in `schema_migrations`; each file runs once, in its own transaction, under
an advisory lock so replicas starting together do not race. The platform baseline (outbox, inbox)
is applied first as version `0000_platform` (then `0000_platform_relay_wake`: the outbox's commit notice).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

MIGRATION_LOCK_ID = 7_246_001

PLATFORM_BASELINE = """
CREATE TABLE IF NOT EXISTS outbox (
    id            BIGSERIAL PRIMARY KEY,
    event_id      UUID NOT NULL UNIQUE,
    topic         TEXT NOT NULL,
    key           TEXT NOT NULL,
    shard         SMALLINT NOT NULL,
    payload       BYTEA NOT NULL,
    headers       JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempted_at  TIMESTAMPTZ,
    attempts      INTEGER NOT NULL DEFAULT 0,
    sent_at       TIMESTAMPTZ,
    last_error    TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending_idx ON outbox (shard, id) WHERE sent_at IS NULL;
CREATE TABLE IF NOT EXISTS inbox (
    consumer      TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
"""


# Every transaction that adds outbox rows notifies `outbox_pending` once (PostgreSQL folds a transaction's identical
# notices into one, delivered at commit): the relays of the other replicas LISTEN, so a row whose shard another
# process's relay owns is published at once, not at that relay's next idle poll.
PLATFORM_RELAY_WAKE = """
CREATE OR REPLACE FUNCTION outbox_rows_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_pending', '');
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS outbox_rows_pending ON outbox;
CREATE TRIGGER outbox_rows_pending AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_rows_pending();
"""


async def _run_sql(conn: AsyncConnection, script: str) -> None:
    """Run a migration script whole through asyncpg's simple-query protocol, inside the migration's transaction.

    PostgreSQL reads it as written: comments anywhere, several statements on a line, dollar-quoted bodies.
    """
    raw = await conn.get_raw_connection()
    await raw.driver_connection.execute(script)


def _migration_files(directory: Path | None) -> list[Path]:
    """The migration files of `directory` in order; None is the platform baseline alone, a missing folder an error."""
    if directory is None:
        return []
    if not directory.is_dir():  # a moved module's `Path(__file__).parent / "migrations"` must not migrate nothing
        raise FileNotFoundError(f"migrations folder {directory} does not exist")
    return sorted(p for p in directory.iterdir() if p.suffix in {".sql", ".py"} and p.name[:4].isdigit())


async def _record(conn: AsyncConnection, version: str, checksum: str) -> None:
    await conn.execute(text("INSERT INTO schema_migrations (version, checksum) VALUES (:v, :c)"), {"v": version, "c": checksum})


async def migrate(engine: AsyncEngine, directory: Path | None) -> list[str]:
    """Apply the platform baseline and every not-yet-applied migration in `directory`; returns those applied."""
    applied_now: list[str] = []
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_ID})
        await conn.commit()
        try:
            async with conn.begin():
                await conn.exec_driver_sql(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version TEXT PRIMARY KEY, checksum TEXT NOT NULL,"
                    " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
            done = {
                row[0]: row[1]
                for row in (await conn.execute(text("SELECT version, checksum FROM schema_migrations"))).all()
            }
            await conn.commit()
            steps: list[tuple[str, str, object]] = [("0000_platform", PLATFORM_BASELINE, None),
                                                    ("0000_platform_relay_wake", PLATFORM_RELAY_WAKE, None)]
            for path in _migration_files(directory):
                steps.append((path.stem, path.read_text(encoding="utf-8"), path))
            for version, body, path in steps:
                checksum = hashlib.sha256(body.encode()).hexdigest()[:16]
                if version in done:
                    if done[version] != checksum:
                        log.warning("migration %s changed since it was applied; not re-run", version)
                    continue
                async with conn.begin():
                    if path is not None and path.suffix == ".py":
                        spec = importlib.util.spec_from_file_location(f"migration_{version}", path)
                        module = importlib.util.module_from_spec(spec)
                        spec.loader.exec_module(module)
                        await module.upgrade(conn)
                        await _record(conn, version, checksum)
                    else:
                        await _record(conn, version, checksum)  # first: it opens the transaction the script runs in
                        await _run_sql(conn, body)
                applied_now.append(version)
                log.info("applied migration %s", version)
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_ID})
            await conn.commit()
    return applied_now


async def ensure_database(admin_url: str, name: str) -> bool:
    """Create database `name` on the server of `admin_url` if it does not exist; True when created."""
    import asyncpg

    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        await conn.execute(f'CREATE DATABASE "{name}"')
        return True
    finally:
        await conn.close()
