"""Database errors reach the log without the values bound to the statement (phones, names, ciphertexts)."""

from __future__ import annotations

import logging

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from shouwang_shared.app import install_error_handlers
from shouwang_shared.logs import JsonFormatter

PHONE, NAME, USERNAME = "13957146688", "王秀英", "zhangwei0571"


async def test_a_failed_statement_is_logged_without_its_bound_values(db, caplog):
    engine, _ = db
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE contacts (phone TEXT PRIMARY KEY, name TEXT NOT NULL)"))
        await conn.execute(text("INSERT INTO contacts VALUES (:phone, :name)"), {"phone": PHONE, "name": NAME})
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/contacts")
    async def add_contact() -> dict:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO contacts VALUES (:phone, :name)"), {"phone": PHONE, "name": NAME})
        return {}

    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        answer = await client.post("/contacts")
    assert answer.status_code == 409
    logged = "\n".join(JsonFormatter("registry").format(r) for r in caplog.records)  # as the service writes them
    assert "INSERT INTO contacts" in logged, "the statement itself is logged, to find the fault"
    assert PHONE not in logged and NAME not in logged and PHONE not in answer.text


async def test_an_asyncpg_error_is_logged_without_the_stored_values_it_quotes(db, caplog):
    """asyncpg's own error text carries PostgreSQL's DETAIL line, which quotes the clashing stored value."""
    import asyncpg

    engine, _ = db
    url = engine.url.render_as_string(hide_password=False).replace("+asyncpg", "")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE staff_logins (username TEXT PRIMARY KEY)")
        await conn.execute("INSERT INTO staff_logins VALUES ($1)", USERNAME)
        try:
            await conn.execute("INSERT INTO staff_logins VALUES ($1)", USERNAME)
        except asyncpg.UniqueViolationError as exc:
            logging.getLogger("shouwang_shared.outbox").warning("relay failed: %s", exc, exc_info=True)
    finally:
        await conn.close()
    [record] = [r for r in caplog.records if r.getMessage().startswith("relay failed")]
    line = JsonFormatter("registry").format(record)
    assert "staff_logins_pkey" in line and USERNAME not in line
