"""Seed the first rule version (in force since 2000-01-01), so facts are scored from the first start."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from rewards.scoring import RuleSet

DEFAULT_VERSION = "2026.1"


async def upgrade(conn) -> None:
    """Insert the default rule set as adopted."""
    rules = RuleSet(
        version=DEFAULT_VERSION, effective_from=datetime(2000, 1, 1, tzinfo=UTC),
        description="积分奖励细则与星级评定办法（初版）",
    )
    await conn.execute(
        text(
            "INSERT INTO rule_sets (version, effective_from, body, status, created_by, adopted_at) "
            "VALUES (:v, :f, CAST(:b AS jsonb), 'adopted', 'migration', now()) ON CONFLICT DO NOTHING"
        ),
        {"v": rules.version, "f": rules.effective_from, "b": rules.model_dump_json()},
    )
