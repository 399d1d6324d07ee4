"""The projections the figures are read from: each fact kind upserts its table, a run of facts in one statement."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg
import orjson

from reports.facts import Fact


@dataclass(frozen=True)
class Projection:
    """How one fact kind lands in its table: the columns it carries (name, SQL type), its key, what a repeat does."""

    table: str
    key: str  # the conflict columns, comma-separated
    columns: tuple[tuple[str, str], ...]
    on_conflict: str
    keep: str = "last"  # several facts for one key in a run: the "last" stands, the "first", or each "overlay"s what it gives

    @property
    def sql(self) -> str:
        """One statement upserting a JSON array of facts."""
        names = ", ".join(name for name, _ in self.columns)
        shape = ", ".join(f"{name} {sql_type}" for name, sql_type in self.columns)
        return (f"INSERT INTO {self.table} ({names}) SELECT {names} FROM jsonb_to_recordset($1::jsonb) AS r({shape}) "
                f"ON CONFLICT ({self.key}) {self.on_conflict}")


def _set(*columns: str) -> str:
    return "DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)


TEXT, TS = "text", "timestamptz"
ASSIGNMENT = (("assignment_id", TEXT), ("operation_id", TEXT), ("post_id", TEXT), ("volunteer_id", TEXT))
PROJECTIONS: dict[str, Projection] = {
    "org_unit": Projection("org_units", "org_unit_id", (("org_unit_id", TEXT), ("name", TEXT), ("kind", TEXT), ("path", TEXT)),
                           _set("name", "kind", "path")),
    "volunteer": Projection(
        "volunteers", "volunteer_id",
        (("volunteer_id", TEXT), ("version", "bigint"), ("status", TEXT), ("core", "boolean"), ("star", "int"),
         ("recruitment_mode", TEXT), ("teams", "text[]"), ("org_path", TEXT), ("display_name", TEXT), ("volunteer_number", TEXT)),
        _set("version", "status", "core", "star", "recruitment_mode", "teams", "org_path", "display_name", "volunteer_number")
        + " WHERE volunteers.version <= EXCLUDED.version",
    ),
    "training": Projection(
        "trainings", "attendance_id",
        (("attendance_id", TEXT), ("session_id", TEXT), ("volunteer_id", TEXT), ("level", TEXT), ("topic", TEXT),
         ("attended_on", "date"), ("org_path", TEXT)),
        "DO NOTHING",
    ),
    "tip_submitted": Projection(
        "tips", "tip_id", (("tip_id", TEXT), ("category", TEXT), ("channel", TEXT), ("org_unit_id", TEXT), ("submitted_at", TS)),
        _set("category", "channel", "org_unit_id", "submitted_at"),
    ),
    "tip_reviewed": Projection(
        "tips", "tip_id", (("tip_id", TEXT), ("category", TEXT), ("verdict", TEXT), ("case_id", TEXT)),
        "DO UPDATE SET verdict = EXCLUDED.verdict, case_id = EXCLUDED.case_id, category = EXCLUDED.category",
    ),
    "case_forwarded": Projection(
        "cases", "case_id", (("case_id", TEXT), ("category", TEXT), ("priority", TEXT), ("forwarded_at", TS)),
        "DO UPDATE SET category = EXCLUDED.category, priority = EXCLUDED.priority,"
        " forwarded_at = coalesce(cases.forwarded_at, EXCLUDED.forwarded_at)",
        keep="first",
    ),
    # A police answer's counts are the case's totals so far: the latest answer that gives a count sets it.
    "case_outcome": Projection(
        "cases", "case_id",
        (("case_id", TEXT), ("category", TEXT), ("outcome", TEXT), ("first_tip_id", TEXT), ("outcome_at", TS),
         ("suspects_caught", "int"), ("fugitives_caught", "int"), ("dens_closed", "int"), ("seizures", "int")),
        "DO UPDATE SET category = EXCLUDED.category, outcome = EXCLUDED.outcome, first_tip_id = EXCLUDED.first_tip_id,"
        " outcome_at = EXCLUDED.outcome_at,"
        + ", ".join(f" {c} = coalesce(EXCLUDED.{c}, cases.{c})" for c in ("suspects_caught", "fugitives_caught", "dens_closed", "seizures")),
        keep="overlay",
    ),
    "need": Projection(
        "needs", "need_id",
        (("need_id", TEXT), ("category", TEXT), ("status", TEXT), ("org_path", TEXT), ("created_at", TS), ("updated_at", TS)),
        _set("category", "status", "org_path", "created_at", "updated_at") + " WHERE needs.updated_at <= EXCLUDED.updated_at",
    ),
    "dispute": Projection(
        "disputes", "dispute_id",
        (("dispute_id", TEXT), ("category", TEXT), ("status", TEXT), ("outcome", TEXT), ("org_path", TEXT), ("sessions", "int"),
         ("created_at", TS), ("closed_at", TS), ("updated_at", TS)),
        _set("category", "status", "outcome", "org_path", "sessions", "created_at", "closed_at", "updated_at")
        + " WHERE disputes.updated_at <= EXCLUDED.updated_at",
    ),
    "ledger": Projection(
        "ledger", "entry_id, account",
        (("entry_id", TEXT), ("account", TEXT), ("volunteer_id", TEXT), ("pending", "boolean"), ("unit", TEXT), ("amount", "numeric"),
         ("rule_line", TEXT), ("posted_at", TS)),
        "DO NOTHING",
    ),
    "bulletin": Projection(
        "bulletins", "bulletin_id",
        (("bulletin_id", TEXT), ("case_type", TEXT), ("serial", "int"), ("audience_org_paths", "text[]"), ("published_at", TS)),
        "DO UPDATE SET serial = coalesce(EXCLUDED.serial, bulletins.serial)",
    ),
    "operation_activated": Projection(
        "operations", "operation_id",
        (("operation_id", TEXT), ("name", TEXT), ("kind", TEXT), ("org_path", TEXT), ("headcount", "int"), ("activated_at", TS)),
        _set("name", "kind", "org_path", "headcount", "activated_at"),
    ),
    "operation_closed": Projection("operations", "operation_id", (("operation_id", TEXT), ("closed_at", TS)), _set("closed_at")),
    "assignment_offered": Projection("assignments", "assignment_id", (*ASSIGNMENT, ("place_name", TEXT)),
                                     _set("operation_id", "post_id", "volunteer_id", "place_name")),
    "assignment_answered": Projection("assignments", "assignment_id", (*ASSIGNMENT, ("answer", TEXT)), _set("answer")),
    "assignment_attendance": Projection("assignments", "assignment_id", (*ASSIGNMENT, ("attendance", TEXT)), _set("attendance")),
    "hours": Projection(
        "hours", "record_id",
        (("record_id", TEXT), ("assignment_id", TEXT), ("operation_id", TEXT), ("volunteer_id", TEXT), ("hours", "numeric"), ("org_path", TEXT),
         ("started_at", TS), ("ended_at", TS), ("activity", TEXT), ("activity_name", TEXT), ("activity_kind", TEXT),
         ("place_name", TEXT), ("organiser_path", TEXT)),
        "DO NOTHING",
    ),
}

# Merged cases point at the case they were merged into; the surviving case keeps the first tip.
MERGE_SQL = """
WITH r AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(case_id text, merged_case_ids text[], first_tip_id text)),
survivor AS (
    INSERT INTO cases (case_id, first_tip_id) SELECT case_id, first_tip_id FROM r
    ON CONFLICT (case_id) DO UPDATE SET first_tip_id = EXCLUDED.first_tip_id
)
UPDATE cases AS c SET merged_into = r.case_id FROM r WHERE c.case_id = ANY(r.merged_case_ids)
"""

PROJECTED_TABLES = tuple(sorted({p.table for p in PROJECTIONS.values()}))


def runs(facts: Iterable[Fact]) -> list[tuple[str, list[dict]]]:
    """Consecutive facts of one kind, in order (applying run by run keeps each aggregate's events in order)."""
    grouped: list[tuple[str, list[dict]]] = []
    for fact in facts:
        if grouped and grouped[-1][0] == fact.kind:
            grouped[-1][1].append(fact.data)
        else:
            grouped.append((fact.kind, [fact.data]))
    return grouped


def one_per_key(kind: str, rows: Sequence[dict]) -> list[dict]:
    """The rows of a run with one per key (an upsert may touch a row once per statement), the standing one kept."""
    if kind == "cases_merged":
        key, keep = "case_id", "last"
    else:
        projection = PROJECTIONS[kind]
        key, keep = projection.key, projection.keep
    names = key.split(", ")
    chosen: dict[tuple, dict] = {}
    for row in rows:
        k = tuple(row[name] for name in names)
        if keep == "first":
            chosen.setdefault(k, row)
        elif keep == "overlay" and k in chosen:
            chosen[k] = {**chosen[k], **{field: v for field, v in row.items() if v is not None}}
        else:
            chosen[k] = row
    return list(chosen.values())


async def apply_facts(conn: asyncpg.Connection, facts: Iterable[Fact]) -> None:
    """Apply facts to the projections, a run of one kind per statement."""
    for kind, rows in runs(facts):
        sql = MERGE_SQL if kind == "cases_merged" else PROJECTIONS[kind].sql
        await conn.execute(sql, orjson.dumps(one_per_key(kind, rows)).decode())
