"""The local read model of volunteers, fed by the registry's compacted volunteer stream, and what the planner reads from it."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
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

from dispatch.planning_inputs import reliability, reliability_of, volunteer_from_state
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


# volunteer id → (version, planner volunteer without shifts, load or record): a state of one version never changes,
# so parsing it once per process is enough; each plan then reads only ids, versions and records.
_PARSED: dict[str, tuple[int, Volunteer]] = {}
_PARSED_LIMIT = 500_000


async def record_volunteer_states(session: AsyncSession, events: list[Envelope]) -> None:
    """Batch handler: fold volunteer-state events into the read model (older versions change nothing)."""
    states = [VolunteerState.model_validate(event.data) for event in events]
    await store_volunteer_states(await raw_connection(session), states)
    remember_parsed(states)


def remember_parsed(states: list[VolunteerState]) -> None:
    """Parse states for the planner as they arrive (a rolled-back one is re-read: the planner compares versions)."""
    if len(_PARSED) + len(states) > _PARSED_LIMIT:
        _PARSED.clear()
    prior = reliability()
    for state in states:
        held = _PARSED.get(state.volunteer_id)
        if held is None or held[0] < state.version:
            fields = state.model_dump(mode="json")
            _PARSED[state.volunteer_id] = (state.version, volunteer_from_state(fields, reliability=prior))


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


async def _parsed_states(conn: asyncpg.Connection, versions: dict[str, int]) -> dict[str, Volunteer]:
    stale = [vid for vid, version in versions.items() if (held := _PARSED.get(vid)) is None or held[0] != version]
    if stale:
        rows = await conn.fetch(
            "SELECT volunteer_id, version, status, training_compliant, core, recruitment_mode, teams, skills,"
            " certificates::text, lat, lon, availability::text, specialised_eligible, star"
            " FROM volunteers WHERE volunteer_id = ANY($1::text[])",
            stale,
        )
        if len(_PARSED) + len(rows) > _PARSED_LIMIT:
            _PARSED.clear()
        for row in rows:
            state = dict(row)
            state["certificates"] = _json(state["certificates"])
            state["availability"] = _json(state["availability"])
            _PARSED[row["volunteer_id"]] = (row["version"], volunteer_from_state(state, reliability=reliability()))
    return {vid: _PARSED[vid][1] for vid in versions if vid in _PARSED}


async def planner_volunteers(
    conn: asyncpg.Connection,
    *,
    window_start: datetime,
    window_end: datetime,
    near: tuple[float, float, float] | None = None,
) -> list[Volunteer]:
    """Active volunteers (within `near` = (lat, lon, km) if given) as the planner sees them, with shifts they already hold
    (operation assignments and confirmed service-project shifts)."""
    where = "status = 'active' AND lat IS NOT NULL"
    args: list[Any] = []
    if near is not None:
        lat, lon, km = near
        dlat, dlon = km / 111.0, km / (111.0 * max(0.1, math.cos(math.radians(lat))))
        where += " AND lat BETWEEN $1 AND $2 AND lon BETWEEN $3 AND $4"
        args.extend([lat - dlat, lat + dlat, lon - dlon, lon + dlon])
    rows = await conn.fetch(
        f"SELECT volunteer_id, version, accepted, declined, expired, shows, no_shows FROM volunteers WHERE {where}", *args
    )
    parsed = await _parsed_states(conn, {r["volunteer_id"]: r["version"] for r in rows})
    busy_rows = await conn.fetch(
        "SELECT volunteer_id, shift_start, shift_end FROM assignments"
        " WHERE status = ANY($1::text[]) AND shift_start < $3 AND shift_end > $2"
        " UNION ALL SELECT volunteer_id, starts_at, ends_at FROM shift_signups"  # confirmed service-project shifts
        " WHERE status = 'confirmed' AND starts_at < $3 AND ends_at > $2",
        list(HOLDING_STATUSES), window_start, window_end,
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
    prior = reliability()
    out = []
    for row in rows:
        vid = row["volunteer_id"]
        base = parsed.get(vid)
        if base is None:  # changed between the two reads; the next plan sees it
            continue
        held, recent, record = busy.get(vid), load.get(vid, 0), reliability_of(row)
        if held or recent or record != prior:
            base = replace(base, busy=tuple(held or ()), load=float(recent), reliability=record)
        out.append(base)
    return out


async def known_codes(conn: asyncpg.Connection) -> tuple[set[str], set[str], set[str]]:
    """The skill, team and certificate codes some volunteer in the read model holds."""
    row = await conn.fetchrow(
        "SELECT (SELECT array_agg(DISTINCT s) FROM volunteers, unnest(skills) s) AS skills,"
        " (SELECT array_agg(DISTINCT t) FROM volunteers, unnest(teams) t) AS teams,"
        " (SELECT array_agg(DISTINCT c->>'code') FROM volunteers, jsonb_array_elements(certificates) c) AS certificates"
    )
    return set(row["skills"] or ()), set(row["teams"] or ()), set(row["certificates"] or ())
