"""The journal of facts: events taken in (once each), and the projections rebuilt from it."""

from __future__ import annotations

import logging
import time

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.db import raw_connection
from shouwang_shared.envelope import Envelope
from shouwang_shared.inbox import PoisonMessage

from reports.facts import Fact, fact_of
from reports.projections import PROJECTED_TABLES, apply_facts

log = logging.getLogger(__name__)
REPLAY_CHUNK = 5000
REBUILD_LOCK = 0x5245504F  # "REPO": one rebuild at a time, and none while a batch is being taken in


async def take_in(session: AsyncSession, events: list[Envelope]) -> None:
    """Journal the facts of new events and apply them to the projections, in the consumer's transaction."""
    facts: list[tuple[str, Fact]] = []
    for event in events:
        try:
            fact = fact_of(event.type, event.data, event.time)
        except ValueError as exc:
            raise PoisonMessage(f"{event.type}: {exc}") from exc
        if fact is not None:
            facts.append((event.id, fact))
    if not facts:
        return
    conn = await raw_connection(session)
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", REBUILD_LOCK)
    new_ids = set(await conn.fetchval(
        "WITH added AS (INSERT INTO facts (event_id, kind, data) SELECT event_id, kind, data"
        " FROM unnest($1::text[], $2::text[], $3::jsonb[]) WITH ORDINALITY AS r(event_id, kind, data, n) ORDER BY n"
        " ON CONFLICT (event_id) DO NOTHING RETURNING event_id) SELECT coalesce(array_agg(event_id), '{}') FROM added",
        [eid for eid, _ in facts], [f.kind for _, f in facts], [orjson.dumps(f.data).decode() for _, f in facts],
    ))
    await apply_facts(conn, [fact for eid, fact in facts if eid in new_ids])


def _json(value) -> dict:
    """A jsonb value as a dict (the session's connection decodes jsonb; a bare asyncpg connection gives text)."""
    return value if isinstance(value, dict) else orjson.loads(value)


async def rebuild(*, sessions: async_sessionmaker[AsyncSession]) -> dict:
    """Wipe every projection and replay the whole journal into them, in one transaction; returns facts replayed and seconds."""
    started = time.perf_counter()
    replayed = 0
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        await conn.execute("SELECT pg_advisory_xact_lock($1)", REBUILD_LOCK)
        await conn.execute(f"TRUNCATE {', '.join(PROJECTED_TABLES)}")
        last = 0
        while True:
            rows = await conn.fetch("SELECT seq, kind, data FROM facts WHERE seq > $1 ORDER BY seq LIMIT $2", last, REPLAY_CHUNK)
            if not rows:
                break
            await apply_facts(conn, [Fact(r["kind"], _json(r["data"])) for r in rows])
            replayed += len(rows)
            last = rows[-1]["seq"]
    seconds = time.perf_counter() - started
    log.info("reports: rebuilt the projections from %d facts in %.2f s", replayed, seconds)
    return {"facts_replayed": replayed, "seconds": round(seconds, 3)}
