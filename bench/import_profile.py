"""Where the seconds of a roster import go (issue #22): one import of ROWS people on a private, durable PostgreSQL
with `pg_stat_statements`, printing the CPU per row of the importing process, its worker processes and PostgreSQL,
the client's wall time per write step, and each statement's time, WAL and full-page images.

    python -m bench.import_profile 1000000                  # as `bench/registry.py` makes the province roster
    python -m bench.import_profile 1000000 max_wal_size=1GB # a server setting for this run (the stack's: 8GB)
    python -m bench.import_profile 1000000 indexes=off      # volunteers without their secondary indexes
    python -m bench.import_profile 1000000 org_unit_check=on  # the org-unit reference enforced again (before 0008)

Run it under py-spy for the Python side: `py-spy record --subprocesses --format raw -o out.txt -- python -m
bench.import_profile 1000000`. Not a benchmark module (no `run`): `make bench` does not run it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import asyncpg
import psutil

from shouwang_dev.stack.infra import PostgresServer, free_port
from shouwang_shared.db import make_engine, make_session_factory
from shouwang_shared.migrations import migrate

from bench.registry import roster_csv, seed_units
from registry.config import RegistrySettings
from registry.main import MIGRATIONS
from registry.roster import jobs, write

SECONDARY_INDEXES = (
    "ALTER TABLE volunteers DROP CONSTRAINT volunteers_national_id_index_key",
    "ALTER TABLE volunteers DROP CONSTRAINT volunteers_phone_index_key",
    "DROP INDEX volunteers_number_idx", "DROP INDEX volunteers_path_idx", "DROP INDEX volunteers_grid_idx",
    "DROP INDEX volunteers_recruiter_idx", "DROP INDEX volunteers_pending_star_idx",
)
STATEMENTS_SQL = (
    "SELECT calls, total_exec_time / 1000 AS seconds, rows, wal_bytes, wal_fpi, "
    "left(regexp_replace(query, '\\s+', ' ', 'g'), 100) AS query FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 8"
)
CHECKPOINTS_SQL = "SELECT num_timed AS timed, num_requested AS requested, buffers_written AS buffers FROM pg_stat_checkpointer"
WAL_SQL = "SELECT wal_records, wal_fpi, wal_bytes, wal_buffers_full FROM pg_stat_wal"
wall: dict[str, float] = defaultdict(float)


def timed(name: str, function):
    """`function` (a coroutine function), adding its wall time to `wall[name]`."""
    async def measured(*args, **kwargs):
        started = time.perf_counter()
        try:
            return await function(*args, **kwargs)
        finally:
            wall[name] += time.perf_counter() - started
    return measured


def copy_rows_timed(copy_rows):
    """`write._copy_rows`, adding its wall time per table."""
    async def measured(conn, table, columns, rows):
        started = time.perf_counter()
        try:
            return await copy_rows(conn, table, columns, rows)
        finally:
            wall[f"COPY {table}"] += time.perf_counter() - started
    return measured


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User and system CPU seconds of `processes` (those still alive)."""
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


async def profile(rows: int, options: dict[str, str]) -> None:
    """Import `rows` people once and print where the time went."""
    root = Path(tempfile.mkdtemp(prefix="import-profile-"))
    settings = {name: value for name, value in options.items() if name not in ("indexes", "org_unit_check")}
    pg = PostgresServer(root / "pgdata", free_port(), durable=True, settings=settings)
    pg.start()
    try:
        admin = await asyncpg.connect(pg.admin_url.replace("+asyncpg", ""))
        await admin.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        await admin.execute("ALTER SYSTEM SET pg_stat_statements.track = 'all'")  # the reference checks run inside triggers
        await admin.close()
        pg.stop()
        pg.start()
        admin = await asyncpg.connect(pg.admin_url.replace("+asyncpg", ""))
        await admin.execute("CREATE DATABASE import_profile")
        await admin.close()
        url = pg.url("import_profile")
        engine = make_engine(url, pool_size=4)
        await migrate(engine, MIGRATIONS)
        sessions = make_session_factory(engine)
        _, stations = await seed_units(sessions, towns=30, stations_per_town=10)
        db = await asyncpg.connect(url.replace("+asyncpg", ""))
        await db.execute("CREATE EXTENSION pg_stat_statements")
        if options.get("indexes") == "off":
            for statement in SECONDARY_INDEXES:
                await db.execute(statement)
        if options.get("org_unit_check") == "on":
            await db.execute("ALTER TABLE volunteers ALTER CONSTRAINT volunteers_org_unit_id_fkey ENFORCED")
        raw = roster_csv(rows, stations)
        keys = {"pii_key": base64.b64encode(b"k" * 32).decode(), "pii_index_key": base64.b64encode(b"i" * 32).decode()}
        cipher = RegistrySettings(database_url=url, **keys).pii_cipher()
        await db.execute("CHECKPOINT")
        await db.execute("SELECT pg_stat_statements_reset()")
        await db.execute("SELECT pg_stat_reset_shared('wal'), pg_stat_reset_shared('checkpointer')")
        write._copy_rows = copy_rows_timed(write._copy_rows)
        jobs.reserve_numbers = timed("reserve numbers", jobs.reserve_numbers)
        jobs.write_chunk = timed("write a piece (its transaction)", jobs.write_chunk)
        print(f"load average before: {os.getloadavg()}", flush=True)
        database_cpu, own_cpu, children = cpu_seconds(pg.processes()), time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        report = await jobs.import_roster(sessions=sessions, cipher=cipher, raw=raw, chunk_size=5_000)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        workers_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
        n = report.imported
        print(f"load average after: {os.getloadavg()}")
        print(f"{n} imported, {len(report.errors)} refused, {elapsed:.1f} s, {n / elapsed:,.0f} rows/s")
        print(f"CPU µs per row: importing process {(time.process_time() - own_cpu) / n * 1e6:.1f}, "
              f"workers {workers_cpu / n * 1e6:.1f}, PostgreSQL {(cpu_seconds(pg.processes()) - database_cpu) / n * 1e6:.1f}")
        for name, seconds in sorted(wall.items()):
            print(f"  client wall, {name}: {seconds:.1f} s")
        checkpoints = await db.fetchrow(CHECKPOINTS_SQL)
        print(f"  checkpoints: {checkpoints['timed']} timed, {checkpoints['requested']} requested, "
              f"{checkpoints['buffers']} buffers written by them")
        wal = await db.fetchrow(WAL_SQL)
        wal_bytes = int(wal["wal_bytes"])  # numeric
        print(f"  WAL: {wal_bytes / 1e6:,.0f} MB in {wal['wal_records']:,} records, {wal['wal_fpi']:,} full pages, "
              f"{wal['wal_buffers_full']:,} times the WAL buffers were full ({wal_bytes / n:,.0f} bytes per row)", flush=True)
        for row in await db.fetch(STATEMENTS_SQL):
            print(f"  {row['seconds']:7.2f} s  {row['calls']:>7} calls  {row['rows']:>8} rows  WAL {int(row['wal_bytes']) / 1e6:6.0f} MB"
                  f"  {row['wal_fpi']:>7} full pages  {row['query']}", flush=True)
        await db.close()
        await engine.dispose()
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    """Read ROWS and NAME=VALUE options from the command line and profile one import."""
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    options = dict(arg.split("=", 1) for arg in sys.argv[2:])
    asyncio.run(profile(rows, options))


if __name__ == "__main__":
    main()
