"""The import of one roster: pieces of the file prepared by worker processes while earlier pieces are written, with
progress and a report of what was imported, skipped and refused."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import text

from shouwang_shared.auth import Principal
from shouwang_shared.db import raw_connection
from shouwang_shared.pii import PiiCipher

from registry.roster.parse import RowError, line_count, open_roster, read_piece
from registry.roster.rows import Lookups, PreparedChunk, prepare_chunk
from registry.roster.write import Sessions, write_chunk
from registry.tables import NEXT_NUMBERS_SQL


@dataclass
class ImportReport:
    """What an import did: rows read, volunteers imported, people already registered, rows refused."""

    rows: int = 0
    imported: int = 0
    already_registered: int = 0
    errors: list[RowError] = field(default_factory=list)

    def as_dict(self, *, max_errors: int = 1000) -> dict:
        """The report as JSON-ready data (at most `max_errors` row errors)."""
        return {"rows": self.rows, "imported": self.imported, "already_registered": self.already_registered,
                "error_count": len(self.errors),
                "errors": [e.__dict__ for e in self.errors[:max_errors]]}


async def load_lookups(sessions: Sessions, principal: Principal | None) -> Lookups:
    """Org units (by id and by unique name), grids (by id and name per station) and teams."""
    async with sessions() as session:
        units = (await session.execute(text("SELECT id, name, path, kind FROM org_units"))).all()
        grids = (await session.execute(text("SELECT id, name, station_id FROM grids"))).all()
        teams = (await session.execute(text("SELECT code, name FROM teams"))).all()
    by_key: dict[str, tuple[str, str, str]] = {}
    names: dict[str, list[tuple[str, str, str]]] = {}
    for uid, name, path, kind in units:
        entry = (str(uid), path, kind)  # ids as text: cheap to hand to worker processes, COPY takes them as they are
        by_key[str(uid)] = entry
        names.setdefault(name, []).append(entry)
    for name, entries in names.items():
        if len(entries) == 1:
            by_key.setdefault(name, entries[0])
    grid_map = {}
    for gid, name, station in grids:
        grid_map[(str(station), str(gid))] = str(gid)
        grid_map[(str(station), name)] = str(gid)
    team_map = {code: code for code, _ in teams} | {name: code for code, name in teams}
    return Lookups(units=by_key, grids=grid_map, teams=team_map, scope=principal)


async def reserve_numbers(sessions: Sessions, count: int) -> list[int]:
    """`count` volunteer numbers taken from the sequence for a piece about to be prepared."""
    async with sessions() as session:
        conn = await raw_connection(session)
        return [row[0] for row in await conn.fetch(NEXT_NUMBERS_SQL, count)]


def prepare_piece(first_line: int, piece: str, **context: Any) -> PreparedChunk:
    """Read a piece of the file and prepare its rows (`prepare_chunk`), its unreadable lines among the errors."""
    lines, unreadable = read_piece(first_line, piece)
    chunk = prepare_chunk(lines, **context)
    if unreadable:
        chunk = replace(chunk, errors=unreadable + chunk.errors, rows=chunk.rows + len(unreadable))
    return chunk


def drop_repeated_people(chunk: PreparedChunk, seen: set[bytes]) -> PreparedChunk:
    """Refuse rows whose person or phone came earlier in the file (line and field named); `seen` grows."""
    people = chunk.people
    indexes = set(map(itemgetter(1), people))
    indexes.update(map(itemgetter(2), people))
    if len(indexes) == 2 * len(people) and seen.isdisjoint(indexes):
        seen |= indexes  # the usual case: every person and phone in the chunk new
        return chunk
    keep, errors = [], list(chunk.errors)
    for n, (_, id_index, phone_index) in enumerate(people):
        if id_index in seen:
            errors.append(RowError(chunk.lines[n], "national_id", "与文件中前面的行重复"))
        elif phone_index in seen:
            errors.append(RowError(chunk.lines[n], "phone", "与文件中前面的行重复"))
        else:
            seen.add(id_index)
            seen.add(phone_index)
            keep.append(n)
    return chunk.keep(keep, errors)


_worker_context: dict[str, Any] = {}


def _start_worker(cipher: PiiCipher, header: list[str | None], lookups: Lookups, today: date) -> None:
    """Pool initializer: what every piece of this import is checked against (keys included), kept in the worker."""
    _worker_context.update(cipher=cipher, header=header, lookups=lookups, today=today, memo={})


def _start_pool(workers: int, context: tuple) -> ProcessPoolExecutor:
    """Worker processes forked now, with this process's objects frozen out of garbage collection while they fork.

    A child's collections would otherwise walk every object it inherits (the whole heap of the process that runs
    the import), writing to their pages, which the kernel then copies: measured, ~15 % of the workers' CPU.
    """
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"), initializer=_start_worker,
                               initargs=context)
    gc.freeze()
    try:
        pool.submit(int)  # with "fork", the first task forks every worker, here
    finally:
        gc.unfreeze()
    return pool


def _prepare_in_worker(first_line: int, piece: str, at: datetime, volunteer_numbers: list[int]) -> PreparedChunk:
    return prepare_piece(first_line, piece, at=at, volunteer_numbers=volunteer_numbers, **_worker_context)


async def import_roster(
    *, sessions: Sessions, cipher: PiiCipher, raw: bytes, principal: Principal | None = None, chunk_size: int = 5_000,
    progress: Callable[[ImportReport], Any] | None = None, today: date | None = None, workers: int = 2, writers: int = 2,
) -> ImportReport:
    """Import a CSV roster: refuse bad rows with line and field, insert the good ones in bulk, skip people already registered.

    The file is cut into pieces of `chunk_size` lines, read and prepared (validated, encrypted, indexed, events
    built) by `workers` processes while up to `writers` earlier pieces are written, each in its own transaction; a
    file of one piece, or `workers=0`, is prepared in a thread of this process. `progress` (a function or a
    coroutine function) is called with the report after each written piece.
    """
    roster = open_roster(raw)
    lookups = await load_lookups(sessions, principal)
    report = ImportReport()
    seen: set[bytes] = set()  # identity and phone indexes of the file so far (32-byte digests)
    today = today or date.today()
    at = datetime.now(UTC)
    loop = asyncio.get_running_loop()
    pool = None
    if workers > 0 and roster.lines > chunk_size + 1:
        pool = _start_pool(workers, (cipher, roster.header, lookups, today))
    memo: dict = {}

    async def prepare(first_line: int, piece: str) -> PreparedChunk:
        numbers = await reserve_numbers(sessions, line_count(piece))
        if pool is not None:
            return await loop.run_in_executor(pool, _prepare_in_worker, first_line, piece, at, numbers)
        return await asyncio.to_thread(prepare_piece, first_line, piece, header=roster.header, cipher=cipher, lookups=lookups,
                                       today=today, at=at, volunteer_numbers=numbers, memo=memo)

    async def flush(prepared: PreparedChunk) -> None:
        imported, skipped = await write_chunk(sessions, prepared)
        report.imported += imported
        report.already_registered += skipped
        if progress:
            shown = progress(report)
            if asyncio.iscoroutine(shown):
                await shown

    in_flight: deque[asyncio.Future] = deque()
    writing: deque[asyncio.Task] = deque()

    async def take_one() -> None:
        prepared = drop_repeated_people(await in_flight.popleft(), seen)
        report.rows += prepared.rows
        report.errors.extend(prepared.errors)
        while len(writing) >= max(writers, 1):
            await writing.popleft()
        writing.append(asyncio.create_task(flush(prepared)))

    try:
        for first_line, piece in roster.pieces(chunk_size):
            in_flight.append(asyncio.ensure_future(prepare(first_line, piece)))
            if len(in_flight) > max(workers, 1):
                await take_one()
        while in_flight:
            await take_one()
        while writing:
            await writing.popleft()
    finally:
        for future in in_flight:
            future.cancel()
        for task in writing:
            task.cancel()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    report.errors.sort(key=lambda e: e.line)
    return report
