"""A case's history: one row per thing that happened to it, who did it and when."""

from __future__ import annotations

from datetime import datetime

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

SYSTEM = "system"  # the actor of what intel did on its own (an urgent alert, an escalation one level up)
_NOTE = text(
    "INSERT INTO case_history (case_id, action, actor, detail, at) VALUES (:case_id, :action, :actor, CAST(:detail AS jsonb), :at)"
)


async def note_in_history(session: AsyncSession, case_id, action: str, actor: str, detail: dict, at: datetime) -> None:
    """Add `action` by `actor`, with its `detail`, to the case's history in the caller's transaction."""
    await session.execute(_NOTE, {"case_id": case_id, "action": action, "actor": actor, "detail": orjson.dumps(detail).decode(), "at": at})
