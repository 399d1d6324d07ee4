"""Migrations upgrade an existing database without losing data, once, even when replicas start together."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import text

from shouwang_shared.db import make_engine
from shouwang_shared.migrations import migrate


async def test_new_migration_upgrades_existing_data_and_runs_once(stack, tmp_path):
    url = await stack.create_database(f"mig_{uuid.uuid4().hex[:6]}")
    engine = make_engine(url, pool_size=4)
    (tmp_path / "0001_people.sql").write_text("CREATE TABLE people (id INT PRIMARY KEY, name TEXT NOT NULL);\n")
    assert await migrate(engine, tmp_path) == ["0000_platform", "0001_people"]
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO people VALUES (1, '张三'), (2, '李四')"))
    (tmp_path / "0002_people_town.py").write_text(
        "from sqlalchemy import text\n"
        "async def upgrade(conn):\n"
        "    await conn.execute(text(\"ALTER TABLE people ADD COLUMN town TEXT NOT NULL DEFAULT '城关镇'\"))\n"
    )
    results = await asyncio.gather(migrate(engine, tmp_path), migrate(engine, tmp_path))
    assert sorted(map(tuple, results)) == [(), ("0002_people_town",)]
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, name, town FROM people ORDER BY id"))).all()
    assert [tuple(r) for r in rows] == [(1, "张三", "城关镇"), (2, "李四", "城关镇")]
    await engine.dispose()
