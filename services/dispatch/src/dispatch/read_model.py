"""The local read model of volunteers, fed by the registry's compacted volunteer stream, and what the planner reads from it."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.contracts.registry import VolunteerState
from shouwang_shared.db import raw_connection
from shouwang_shared.envelope import Envelope
from shouwang_shared.kafka import make_consumer
from shouwang_shared.topics import topic_name

from dispatch.planning_inputs import reliability_of, volunteer_from_state
from dispatch.solver import Volunteer

log = logging.getLogger(__name__)

HOLDING_STATUSES = ("offered", "accepted", "checked_in")  # an assignment in these keeps its shift busy
LOAD_WINDOW = timedelta(days=30)

_UPSERT = """
INSERT INTO volunteers (volunteer_id, version, display_name, status, org_unit_id, org_path, core, recruitment_mode,
                        teams, skills, certificates, lat, lon, availability, training_compliant,
                        specialised_eligible, star, updated_at)
SELECT volunteer_id, version, display_name, status, org_unit_id, org_path, core, recruitment_mode, teams::text[],
       skills::text[], certificates::jsonb, lat, lon, availability::jsonb, training_compliant, specialised_eligible,
       star, updated_at
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::text[],
            $9::text[], $10::text[], $11::text[], $12::float8[], $13::float8[], $14::text[], $15::bool[],
            $16::bool[], $17::int2[], $18::timestamptz[])
     AS u(volunteer_id, version, display_name, status, org_unit_id, org_path, core, recruitment_mode, teams, skills,
          certificates, lat, lon, availability, training_compliant, specialised_eligible, star, updated_at)
ON CONFLICT (volunteer_id) DO UPDATE SET
    version = EXCLUDED.version, display_name = EXCLUDED.display_name, status = EXCLUDED.status,
    org_unit_id = EXCLUDED.org_unit_id, org_path = EXCLUDED.org_path, core = EXCLUDED.core,
    recruitment_mode = EXCLUDED.recruitment_mode, teams = EXCLUDED.teams, skills = EXCLUDED.skills,
    certificates = EXCLUDED.certificates, lat = EXCLUDED.lat, lon = EXCLUDED.lon, availability = EXCLUDED.availability,
    training_compliant = EXCLUDED.training_compliant, specialised_eligible = EXCLUDED.specialised_eligible,
    star = EXCLUDED.star, updated_at = EXCLUDED.updated_at
WHERE volunteers.version < EXCLUDED.version
"""


def _text_arrays_literal(values: list[str]) -> str:
    """A PostgreSQL text[] literal (for arrays of arrays sent as text)."""
    escaped = ['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]
    return "{" + ",".join(escaped) + "}"


async def store_volunteer_states(conn: asyncpg.Connection, states: list[VolunteerState]) -> int:
    """Upsert volunteer states, keeping only the newest `version` of each volunteer; returns how many were offered."""
    newest: dict[str, VolunteerState] = {}
    for state in states:
        held = newest.get(state.volunteer_id)
        if held is None or held.version < state.version:
            newest[state.volunteer_id] = state
    rows = list(newest.values())
    if not rows:
        return 0
    await conn.execute(
        _UPSERT,
        [s.volunteer_id for s in rows], [s.version for s in rows], [s.display_name for s in rows],
        [s.status for s in rows], [s.org_unit_id for s in rows], [s.org_path for s in rows], [s.core for s in rows],
        [s.recruitment_mode for s in rows], [_text_arrays_literal(s.teams) for s in rows],
        [_text_arrays_literal(s.skills) for s in rows],
        [orjson.dumps([c.model_dump(mode="json") for c in s.certificates]).decode() for s in rows],
        [s.lat for s in rows], [s.lon for s in rows],
        [orjson.dumps([w.model_dump(mode="json") for w in s.availability]).decode() for s in rows],
        [s.training_compliant for s in rows], [s.specialised_eligible for s in rows], [s.star for s in rows],
        [s.updated_at for s in rows],
    )
    return len(rows)


async def record_volunteer_states(session: AsyncSession, events: list[Envelope]) -> None:
    """Batch handler: fold volunteer-state events into the read model (older versions change nothing)."""
    states = [VolunteerState.model_validate(event.data) for event in events]
    await store_volunteer_states(await raw_connection(session), states)


async def rebuild_volunteers(
    *, sessions: async_sessionmaker[AsyncSession], bootstrap_servers: str, topic_prefix: str = "", idle_timeout_s: float = 2.0
) -> int:
    """Replay the compacted volunteer topic from the beginning into the read model; returns events read."""
    consumer = make_consumer(bootstrap_servers, topic_name(VolunteerState.TOPIC, topic_prefix), group_id=None)
    await consumer.start()
    seen = 0
    try:
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(list(consumer.assignment()))
        while True:
            done = all([await consumer.position(tp) >= end for tp, end in ends.items()])
            if done:
                break
            batch = await consumer.getmany(timeout_ms=int(idle_timeout_s * 1000), max_records=5000)
            if not batch:
                break
            states = []
            for messages in batch.values():
                for msg in messages:
                    try:
                        event = Envelope.from_bytes(msg.value)
                        if event.type == VolunteerState.TYPE:
                            states.append(VolunteerState.model_validate(event.data))
                    except ValueError as exc:  # a bad record is skipped; the live consumer dead-letters it
                        log.warning("rebuild skipped a bad volunteer record at %s: %s", msg.offset, exc)
            seen += len(states)
            async with sessions() as session, session.begin():
                await store_volunteer_states(await raw_connection(session), states)
    finally:
        await consumer.stop()
    return seen


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


async def planner_volunteers(
    conn: asyncpg.Connection,
    *,
    window_start: datetime,
    window_end: datetime,
    exclude_operation: str | None = None,
    near: tuple[float, float, float] | None = None,
) -> list[Volunteer]:
    """Active volunteers (within `near` = (lat, lon, km) if given) as the planner sees them, with shifts they already hold."""
    where = "status = 'active' AND training_compliant AND lat IS NOT NULL"
    args: list[Any] = []
    if near is not None:
        lat, lon, km = near
        dlat, dlon = km / 111.0, km / (111.0 * max(0.1, math.cos(math.radians(lat))))
        where += " AND lat BETWEEN $1 AND $2 AND lon BETWEEN $3 AND $4"
        args.extend([lat - dlat, lat + dlat, lon - dlon, lon + dlon])
    rows = await conn.fetch(
        "SELECT volunteer_id, status, training_compliant, core, recruitment_mode, teams, skills, certificates::text, lat, lon,"
        " availability::text, specialised_eligible, star, accepted, declined, expired, shows, no_shows"
        f" FROM volunteers WHERE {where}",
        *args,
    )
    busy_rows = await conn.fetch(
        "SELECT volunteer_id, shift_start, shift_end FROM assignments"
        " WHERE status = ANY($1::text[]) AND shift_start < $3 AND shift_end > $2"
        " AND ($4::uuid IS NULL OR operation_id <> $4::uuid)",
        list(HOLDING_STATUSES), window_start, window_end, exclude_operation,
    )
    busy: dict[str, list[tuple[datetime, datetime]]] = {}
    for r in busy_rows:
        busy.setdefault(r["volunteer_id"], []).append((r["shift_start"], r["shift_end"]))
    since = datetime.now(UTC) - LOAD_WINDOW
    load = {
        r["volunteer_id"]: r["n"]
        for r in await conn.fetch(
            "SELECT volunteer_id, count(*) AS n FROM assignments WHERE offered_at > $1"
            " AND status IN ('accepted', 'checked_in', 'checked_out') GROUP BY volunteer_id",
            since,
        )
    }
    out = []
    for row in rows:
        state = dict(row)
        state["certificates"] = _json(state["certificates"])
        state["availability"] = _json(state["availability"])
        vid = state["volunteer_id"]
        out.append(volunteer_from_state(state, busy=busy.get(vid, ()), load=float(load.get(vid, 0)), reliability=reliability_of(state)))
    return out


async def known_codes(conn: asyncpg.Connection) -> tuple[set[str], set[str], set[str]]:
    """The skill, team and certificate codes some volunteer in the read model holds."""
    row = await conn.fetchrow(
        "SELECT (SELECT array_agg(DISTINCT s) FROM volunteers, unnest(skills) s) AS skills,"
        " (SELECT array_agg(DISTINCT t) FROM volunteers, unnest(teams) t) AS teams,"
        " (SELECT array_agg(DISTINCT c->>'code') FROM volunteers, jsonb_array_elements(certificates) c) AS certificates"
    )
    return set(row["skills"] or ()), set(row["teams"] or ()), set(row["certificates"] or ())
