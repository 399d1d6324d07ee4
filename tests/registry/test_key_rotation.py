"""PII key rotation on a real registry database: old rows open under a retired key kept as old, new rows use the new one."""

from __future__ import annotations

import base64
import json

from shouwang_dev.testing import running_app

from registry.main import create_app
from tests.registry.conftest import registry_settings
from tests.registry.people import new_person

NEW_KEY = base64.b64encode(b"N" * 32).decode()
QUIET = {"run_consumers": "false", "run_relay": "false", "training_review_hour": "-1", "star_apply_interval_s": "0"}


async def test_rotated_registry_opens_old_identities_seals_new_ones_under_version_2_and_refuses_a_removed_key(registry):
    _, station = await registry.town_with_station()
    before, person = await registry.volunteer(station)  # sealed by the session registry: PII_KEY, version 1
    old_key = registry.stack.service_env("registry", registry.database_url)["PII_KEY"]
    reveal = {"reason": "公安协查核实身份"}

    rotated = registry_settings(registry.stack, registry.database_url, pii_key=NEW_KEY, pii_key_version="2",
                                pii_old_keys=json.dumps({"1": old_key}), **QUIET)
    async with running_app(create_app(rotated)) as client:
        opened = await client.post(f"/v1/volunteers/{before['id']}/reveal", json=reveal, headers=registry.admin)
        assert opened.status_code == 200, opened.text
        assert (opened.json()["national_id"], opened.json()["phone"]) == (person["national_id"], person["phone"])
        later = new_person(name="欧阳春华")
        created = await client.post("/v1/volunteers", json={**later, "org_unit_id": station["id"]}, headers=registry.admin)
        assert created.status_code == 201, created.text
        after = created.json()
        assert (await client.post(f"/v1/volunteers/{after['id']}/reveal", json=reveal, headers=registry.admin)).json()["phone"] == later["phone"]
    versions = dict(await registry.sql(
        "SELECT id::text, get_byte(national_id_enc, 0) FROM volunteers WHERE id IN (CAST(:a AS uuid), CAST(:b AS uuid))",
        a=before["id"], b=after["id"]))
    assert versions == {before["id"]: 1, after["id"]: 2}

    key_1_removed = registry_settings(registry.stack, registry.database_url, pii_key=NEW_KEY, pii_key_version="2", **QUIET)
    async with running_app(create_app(key_1_removed)) as client:
        refused = await client.post(f"/v1/volunteers/{before['id']}/reveal", json=reveal, headers=registry.admin)
        assert refused.status_code == 503, refused.text
        assert refused.json()["detail"]["code"] == "pii_key_unavailable" and "version 1" in refused.json()["detail"]["message"]
        assert old_key not in refused.text
        still = await client.post(f"/v1/volunteers/{after['id']}/reveal", json=reveal, headers=registry.admin)
        assert still.status_code == 200 and still.json()["national_id"] == later["national_id"]
