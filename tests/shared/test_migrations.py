"""Migrations upgrade an existing database without losing data, once, even when replicas start together."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from shouwang_shared.db import make_engine
from shouwang_shared.migrations import migrate


async def test_new_migration_upgrades_existing_data_and_runs_once(stack, tmp_path):
    url = await stack.create_database(f"mig_{uuid.uuid4().hex[:6]}")
    engine = make_engine(url, pool_size=4)
    (tmp_path / "0001_people.sql").write_text("CREATE TABLE people (id INT PRIMARY KEY, name TEXT NOT NULL);\n")
    assert await migrate(engine, tmp_path) == ["0000_platform", "0000_platform_relay_wake", "0001_people"]
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


async def test_a_script_runs_as_postgresql_reads_it_and_a_failing_one_leaves_nothing(stack, tmp_path):
    url = await stack.create_database(f"mig_{uuid.uuid4().hex[:6]}")
    engine = make_engine(url, pool_size=2)
    (tmp_path / "0001_places.sql").write_text(
        "-- places; a comment with a semicolon;\n"
        "CREATE TABLE places (id INT PRIMARY KEY); -- a note after the statement\n"
        "INSERT INTO places VALUES (1); INSERT INTO places VALUES (2);\n"
        "DO $$ BEGIN\n  INSERT INTO places VALUES (3);\nEND $$;\n"
    )
    assert await migrate(engine, tmp_path) == ["0000_platform", "0000_platform_relay_wake", "0001_places"]
    (tmp_path / "0002_broken.sql").write_text("INSERT INTO places VALUES (4);\nINSERT INTO nowhere VALUES (5);\n")
    with pytest.raises(Exception, match="nowhere"):
        await migrate(engine, tmp_path)
    async with engine.connect() as conn:
        ids = (await conn.execute(text("SELECT id FROM places ORDER BY id"))).scalars().all()
        versions = (await conn.execute(text("SELECT version FROM schema_migrations ORDER BY version"))).scalars().all()
    assert ids == [1, 2, 3] and versions == ["0000_platform", "0000_platform_relay_wake", "0001_places"]  # 0002 rolled back whole, not recorded
    await engine.dispose()


async def test_a_migrations_folder_that_is_not_there_is_an_error_not_an_empty_schema(stack, tmp_path):
    """A module moved away from its `migrations/` (a path built from `__file__`) must fail at start, not migrate nothing."""
    url = await stack.create_database(f"mig_{uuid.uuid4().hex[:6]}")
    engine = make_engine(url, pool_size=2)
    with pytest.raises(FileNotFoundError, match="gone"):
        await migrate(engine, tmp_path / "gone")
    await engine.dispose()
