"""The specialised teams (16 seeded by the first migration)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


async def list_teams(*, sessions: async_sessionmaker[AsyncSession]) -> list[dict]:
    """Every team: code, Chinese name and what it does."""
    async with sessions() as session:
        rows = (await session.execute(text("SELECT code, name, description FROM teams ORDER BY code"))).mappings().all()
    return [dict(r) for r in rows]
