"""Where the seconds of a roster import go (issue #22): one import of ROWS people on a private, durable PostgreSQL
with `pg_stat_statements`, printing the CPU per row of the importing process, its worker processes and PostgreSQL,
the client's wall time per write step, and each statement's time, WAL and full-page images; also PostgreSQL's CPU by
kind of process (user + system), the rate and database CPU per tenth of the file, the buffer pool's traffic
(`pg_stat_io`: pages read, and dirty pages written by the backends themselves), each index's size and reads, the
autovacuum runs, and what the CHECKPOINT after the import costs (the dirty pages the import left behind).

    python -m bench.import_profile 1000000                  # as `bench/registry.py` makes the province roster
    python -m bench.import_profile 1000000 max_wal_size=1GB # a server setting for this run (the stack's: 8GB)
    python -m bench.import_profile 1000000 wal_buffers=8MB  # PostgreSQL's default beside 256MB (the stack's: 64MB)
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
import threading
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
# Shared-buffer traffic of the client backends (reads from the OS, dirty pages they had to write to free a buffer).
IO_SQL = (
    "SELECT backend_type, object, context, reads, writes, extends, evictions, reuses, hits FROM pg_stat_io "
    "WHERE (reads + writes + extends + evictions) > 0 AND object = 'relation' ORDER BY backend_type, context"
)
INDEXES_SQL = (
    "SELECT indexrelname AS name, idx_blks_read AS read, idx_blks_hit AS hit, pg_relation_size(indexrelid) AS size "
    "FROM pg_statio_user_indexes WHERE relname IN ('volunteers', 'volunteer_status_changes', 'outbox') ORDER BY idx_blks_read DESC"
)
VACUUM_SQL = (
    "SELECT relname AS name, autovacuum_count AS vacuums, autoanalyze_count AS analyzes, total_autovacuum_time / 1000 AS vacuum_s, "
    "total_autoanalyze_time / 1000 AS analyze_s FROM pg_stat_user_tables WHERE autovacuum_count + autoanalyze_count > 0"
)
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


class ProcessCpu:
    """CPU seconds of PostgreSQL's processes by kind (backend, autovacuum, WAL writer…), sampled every 0.2 s in a
    thread, so processes that end during the import (autovacuum workers) are counted up to their last sample."""

    def __init__(self, pg: PostgresServer) -> None:
        self.pg, self.last, self.first = pg, {}, {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for process in self.pg.processes():
                try:
                    with process.oneshot():
                        times, kind = process.cpu_times(), " ".join(process.cmdline()[0].split()[1:3]) or "postmaster"
                except (psutil.NoSuchProcess, IndexError):
                    continue
                if kind.startswith("postgres "):
                    kind = "client backend"
                self.first.setdefault(process.pid, (kind, times.user, times.system))
                self.last[process.pid] = (kind, times.user, times.system)
            self.stop.wait(0.2)

    def by_kind(self) -> dict[str, tuple[float, float]]:
        """CPU seconds (user, system) per kind of process since the first sample."""
        totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for pid, (kind, user, system) in self.last.items():
            totals[kind][0] += user - self.first[pid][1]
            totals[kind][1] += system - self.first[pid][2]
        return {kind: (user, system) for kind, (user, system) in totals.items()}


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
        await db.execute("SELECT pg_stat_reset_shared('wal'), pg_stat_reset_shared('checkpointer'), pg_stat_reset_shared('io')")
        await db.execute("SELECT pg_stat_reset()")
        write._copy_rows = copy_rows_timed(write._copy_rows)
        jobs.reserve_numbers = timed("reserve numbers", jobs.reserve_numbers)
        jobs.write_chunk = timed("write a piece (its transaction)", jobs.write_chunk)
        print(f"load average before: {os.getloadavg()}", flush=True)
        database_cpu, own_cpu, children = cpu_seconds(pg.processes()), time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        sampler = ProcessCpu(pg)
        sampler.thread.start()
        started = time.perf_counter()
        marks: list[tuple[int, float, float]] = []  # (rows imported, wall s, PostgreSQL CPU s) every tenth of the file

        def mark(progress: jobs.ImportReport) -> None:
            if progress.imported >= (len(marks) + 1) * rows // 10:
                marks.append((progress.imported, time.perf_counter() - started, cpu_seconds(pg.processes()) - database_cpu))

        report = await jobs.import_roster(sessions=sessions, cipher=cipher, raw=raw, chunk_size=5_000, progress=mark)
        elapsed = time.perf_counter() - started
        sampler.stop.set()
        sampler.thread.join()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        workers_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
        n = report.imported
        print(f"load average after: {os.getloadavg()}")
        print(f"{n} imported, {len(report.errors)} refused, {elapsed:.1f} s, {n / elapsed:,.0f} rows/s")
        print(f"CPU µs per row: importing process {(time.process_time() - own_cpu) / n * 1e6:.1f}, "
              f"workers {workers_cpu / n * 1e6:.1f}, PostgreSQL {(cpu_seconds(pg.processes()) - database_cpu) / n * 1e6:.1f}")
        print("  PostgreSQL CPU µs/row by process (user + system): " + ", ".join(
            f"{kind} {user / n * 1e6:.1f} + {system / n * 1e6:.1f}"
            for kind, (user, system) in sorted(sampler.by_kind().items(), key=lambda k: -sum(k[1])) if user + system > 0))
        own = resource.getrusage(resource.RUSAGE_SELF)
        print(f"  this process: user {own.ru_utime:.1f} s, system {own.ru_stime:.1f} s (whole run); "
              f"workers: user {(after.ru_utime - children.ru_utime) / n * 1e6:.1f}, system {(after.ru_stime - children.ru_stime) / n * 1e6:.1f} µs/row")
        last = (0, 0.0, 0.0)
        for imported, at, database in marks:
            done, span = imported - last[0], at - last[1]
            print(f"  to row {imported:>9,}: {done / span:8,.0f} rows/s, PostgreSQL {(database - last[2]) / done * 1e6:5.1f} µs/row")
            last = (imported, at, database)
        for name, seconds in sorted(wall.items()):
            print(f"  client wall, {name}: {seconds:.1f} s")
        checkpoints = await db.fetchrow(CHECKPOINTS_SQL)
        print(f"  checkpoints: {checkpoints['timed']} timed, {checkpoints['requested']} requested, "
              f"{checkpoints['buffers']} buffers written by them")
        wal = await db.fetchrow(WAL_SQL)
        wal_bytes = int(wal["wal_bytes"])  # numeric
        print(f"  WAL: {wal_bytes / 1e6:,.0f} MB in {wal['wal_records']:,} records, {wal['wal_fpi']:,} full pages, "
              f"{wal['wal_buffers_full']:,} times the WAL buffers were full ({wal_bytes / n:,.0f} bytes per row)", flush=True)
        for row in await db.fetch(IO_SQL):
            print(f"  io {row['backend_type']}/{row['context']}: reads {row['reads']:,}, writes {row['writes']:,}, extends {row['extends']:,}, "
                  f"evictions {row['evictions']:,}, reuses {row['reuses'] or 0:,}, hits {row['hits']:,}")
        for row in await db.fetch(INDEXES_SQL):
            print(f"  index {row['name']}: {row['size'] / 1e6:,.0f} MB, blocks read {row['read']:,}, hit {row['hit']:,}")
        for row in await db.fetch(VACUUM_SQL):
            print(f"  autovacuum {row['name']}: {row['vacuums']} vacuums ({row['vacuum_s']:.1f} s), {row['analyzes']} analyzes ({row['analyze_s']:.1f} s)")
        for row in await db.fetch(STATEMENTS_SQL):
            print(f"  {row['seconds']:7.2f} s  {row['calls']:>7} calls  {row['rows']:>8} rows  WAL {int(row['wal_bytes']) / 1e6:6.0f} MB"
                  f"  {row['wal_fpi']:>7} full pages  {row['query']}", flush=True)
        database_cpu, started = cpu_seconds(pg.processes()), time.perf_counter()
        await db.execute("CHECKPOINT")  # the dirty pages the import left in shared buffers, written now
        print(f"  CHECKPOINT after the import: {time.perf_counter() - started:.1f} s, PostgreSQL "
              f"{(cpu_seconds(pg.processes()) - database_cpu) / n * 1e6:.1f} µs/row", flush=True)
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
