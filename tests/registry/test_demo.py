"""The demo county loads once, completely, announces itself through the outbox, and a second run adds nothing."""

from __future__ import annotations

from sqlalchemy import text

from shouwang_dev.demo import DEV_PASSWORD, DEV_PHONES, load_demo
from shouwang_shared.contracts.registry import VolunteerState
from shouwang_shared.db import make_engine, make_session_factory
from shouwang_shared.envelope import Envelope

from registry import staff, volunteers
from registry.schemas import PasswordCheckCreate
from tests.registry.conftest import registry_settings


async def test_the_demo_county_loads_idempotently_with_logins_and_events(stack):
    url = await stack.create_database("registry_demo")
    settings = registry_settings(stack, url)
    first = await load_demo(url, volunteers=300, settings=settings)
    assert first["org_units"] == {"county": 1, "town": 10, "branch": 10, "station": 208}
    assert first["grids"] == 416 and first["volunteers_added"] == 300 and first["volunteers_total"] == 300
    assert first["attendance_added"] > 0 and first["volunteer_phones"] == list(DEV_PHONES)
    again = await load_demo(url, volunteers=300, settings=settings)
    assert again["volunteers_added"] == 0 and again["volunteers_total"] == 300 and again["attendance_added"] == 0

    engine = make_engine(url, pool_size=2)
    try:
        sessions = make_session_factory(engine)
        async with sessions() as session:
            outbox = dict((await session.execute(text("SELECT topic, count(*) FROM outbox GROUP BY topic"))).all())
            stations_per_town = (await session.execute(text(
                "SELECT min(c), max(c) FROM (SELECT count(*) AS c FROM org_units WHERE kind = 'station' GROUP BY parent_id) x"))).one()
            names = (await session.execute(text("SELECT count(DISTINCT name) FROM org_units WHERE kind = 'station'"))).scalar()
            kinds = dict((await session.execute(text("SELECT core, count(*) FROM volunteers GROUP BY core"))).all())
            flagged = (await session.execute(text("SELECT count(*) FROM volunteers WHERE NOT training_compliant"))).scalar()
            payloads = (await session.execute(text("SELECT payload FROM outbox WHERE topic = 'registry.volunteers.v1'"))).scalars().all()
        states = [VolunteerState.model_validate(Envelope.from_bytes(p).data) for p in payloads]
        assert any(s.certificates for s in states) and any(s.availability for s in states) and all(s.display_name.endswith("*") for s in states)
        # One state per volunteer, and a second one for each the training review flagged as behind.
        assert 0 < flagged < 300
        # Every staff account (a grid worker per grid and six named logins) is announced once, like one made through the API.
        assert outbox == {"registry.orgunits.v1": 229, "registry.volunteers.v1": 300 + flagged, "registry.training.v1": first["attendance_added"],
                          "registry.staff.v1": 416 + 6}
        assert stations_per_town == (20, 21) and names == 208 and kinds[True] > 0 and kinds[False] > kinds[True]

        hasher = staff.password_hasher(settings.argon2_time_cost, settings.argon2_memory_kib)
        admin = await staff.verify_password(sessions=sessions, hasher=hasher, data=PasswordCheckCreate(username="admin", password=DEV_PASSWORD))
        assert admin["role"] == "county_admin" and admin["scope_path"] == first["county_path"]
        town = await staff.verify_password(sessions=sessions, hasher=hasher, data=PasswordCheckCreate(username="town1", password=DEV_PASSWORD))
        assert town["role"] == "town_admin" and town["scope_path"] == first["town_path"]
        cipher = settings.pii_cipher()
        for phone in DEV_PHONES:
            found = await volunteers.find_by_phone(sessions=sessions, cipher=cipher, phone=phone)
            assert found["status"] == "active"
    finally:
        await engine.dispose()
