"""Writing a prepared chunk: binary COPY of its volunteers, their history and their outbox rows (encoded by the
worker that prepared it) in one transaction, people already registered left out (a savepoint, then a staging table
with `ON CONFLICT DO NOTHING`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.db import raw_connection
from shouwang_shared.outbox import OUTBOX_COLUMNS, OutboxRow, enqueue_many, wake_relays_after_commit

from registry.copy_binary import EncodedRows
from registry.roster.rows import (
    HISTORY_COLUMNS,
    IMPORT_REASON,
    IMPORTED_BY,
    VOLUNTEER_COLUMNS,
    PreparedChunk,
    VolunteerRecord,
    state_outbox_row,
)
from registry.tables import INSERT_COLUMNS

Sessions = async_sessionmaker[AsyncSession]

# Which of a chunk's identity and phone indexes are taken: one index probe each (a plain `= ANY(...)` over a growing
# table turns into a sequential scan). Each list goes as one comma-separated text of hex digests: hex has no commas,
# and one text is far cheaper to send than an array.
REGISTERED_SQL = (
    "SELECT f.x FROM unnest(string_to_array($1, ',')) AS f(x) "
    "CROSS JOIN LATERAL (SELECT 1 FROM volunteers v WHERE v.national_id_index = decode(f.x, 'hex') LIMIT 1) AS hit "
    "UNION ALL SELECT f.x FROM unnest(string_to_array($2, ',')) AS f(x) "
    "CROSS JOIN LATERAL (SELECT 1 FROM volunteers v WHERE v.phone_index = decode(f.x, 'hex') LIMIT 1) AS hit"
)


async def write_chunk(sessions: Sessions, chunk: PreparedChunk) -> tuple[int, int]:
    """Insert a chunk's new people with their history and events, skipping people already registered; (imported, skipped)."""
    count = len(chunk.people) if chunk.prepared else len(chunk.records)
    if not count:
        return 0, 0
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        if not chunk.prepared:
            inserted = await _insert_through_staging(conn, chunk)
            if inserted:
                events = await asyncio.to_thread(_plain_state_events, chunk.records, inserted, datetime.now(UTC))
                await enqueue_many(session, events)
            return len(inserted), count - len(inserted)
        imported = await _copy_skipping_registered(conn, chunk)
        wake_relays_after_commit(session)
    return imported, count - imported


def _plain_state_events(records: list[tuple], inserted: dict[str, int], at: datetime) -> list[OutboxRow]:
    """The outbox rows of the first `VolunteerState` of each inserted plain record (`inserted`: id → its number)."""
    named = (VolunteerRecord(*record[:len(INSERT_COLUMNS)], volunteer_number=inserted[str(record[0])])
             for record in records if str(record[0]) in inserted)
    return [state_outbox_row(r._replace(id=str(r.id)), at) for r in named]


async def _copy_skipping_registered(conn: asyncpg.Connection, chunk: PreparedChunk) -> int:
    """COPY a chunk's people, their history and events, leaving out people already registered; how many were inserted.

    Optimistic: the people of a new roster are all new, so the chunk is COPYed whole. When a unique index refuses it
    (a re-run, an overlapping roster), the COPY rolls back to a savepoint, the chunk looks up which identity and phone
    indexes are taken and COPYs the others. Should someone register one of those in between, the chunk goes through
    the staging table and `ON CONFLICT DO NOTHING`.
    """
    await conn.execute("SAVEPOINT import_copy")
    if await _copied_as_new(conn, chunk):
        return len(chunk.people)
    registered = await conn.fetch(REGISTERED_SQL, ",".join([p[1].hex() for p in chunk.people]),
                                  ",".join([p[2].hex() for p in chunk.people]))
    taken = {bytes.fromhex(row[0]) for row in registered}
    chunk = chunk.keep([n for n, (_, id_index, phone) in enumerate(chunk.people) if id_index not in taken and phone not in taken])
    if not chunk.people:
        return 0
    if await _copied_as_new(conn, chunk):
        return len(chunk.people)
    inserted = await _insert_through_staging(conn, chunk)
    if inserted:
        await _copy_rows(conn, "outbox", OUTBOX_COLUMNS,
                         chunk.outbox_rows.pick([n for n, person in enumerate(chunk.people) if person[0] in inserted]))
    return len(inserted)


async def _copied_as_new(conn: asyncpg.Connection, chunk: PreparedChunk) -> bool:
    """COPY a chunk's people straight into `volunteers`, their history and the outbox; False, rolled back to the
    `import_copy` savepoint, when a unique index refuses one of them."""
    try:
        await _copy_rows(conn, "volunteers", VOLUNTEER_COLUMNS, chunk.volunteer_rows)
        await _copy_rows(conn, "volunteer_status_changes", HISTORY_COLUMNS, chunk.history_rows)
        await _copy_rows(conn, "outbox", OUTBOX_COLUMNS, chunk.outbox_rows)
    except asyncpg.UniqueViolationError:
        await conn.execute("ROLLBACK TO SAVEPOINT import_copy")
        return False
    return True


async def _stream(parts: Iterable[bytes | memoryview]) -> AsyncIterator[bytes | memoryview]:
    for part in parts:
        yield part


async def _copy_rows(conn: asyncpg.Connection, table: str, columns: Sequence[str], rows: EncodedRows) -> None:
    """One binary COPY of rows already encoded (in `columns` order), streamed without joining header, tuples and trailer."""
    await conn.copy_to_table(table, source=_stream(rows.copy_parts()), columns=list(columns), format="binary")


async def _insert_through_staging(conn: asyncpg.Connection, chunk: PreparedChunk) -> dict[str, int]:
    """COPY a chunk into a staging table and insert who is not registered yet, with their history; the ids inserted
    with their volunteer numbers (plain records take theirs from the staging table's default, the sequence)."""
    await conn.execute("CREATE TEMP TABLE IF NOT EXISTS import_stage (LIKE volunteers INCLUDING DEFAULTS) ON COMMIT DROP")
    if chunk.prepared:
        await _copy_rows(conn, "import_stage", VOLUNTEER_COLUMNS, chunk.volunteer_rows)
    else:
        await conn.copy_records_to_table("import_stage", columns=INSERT_COLUMNS, records=chunk.records)
    columns = ", ".join(VOLUNTEER_COLUMNS)
    rows = await conn.fetch(
        f"WITH inserted AS (INSERT INTO volunteers ({columns}) SELECT {columns} FROM import_stage "
        f"ON CONFLICT DO NOTHING RETURNING id, status, volunteer_number), "
        f"history AS (INSERT INTO volunteer_status_changes ({', '.join(HISTORY_COLUMNS)}) "
        f"SELECT id, NULL, status, '{IMPORT_REASON}', '{IMPORTED_BY}' FROM inserted) "
        f"SELECT id, volunteer_number FROM inserted"
    )
    return {str(r[0]): r[1] for r in rows}
