"""A typed client generated from the public contract drives a volunteer's main flows through the gateway.

The client is generated afresh (openapi-python-client) from `services/gateway/src/gateway/openapi/public.json`,
so an answer that no longer matches the contract fails here when the generated models parse it.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from shouwang_dev.testing import eventually

from gateway.main import PUBLIC_OPENAPI
from tests.e2e.journey import activated_operation, build_county, expect, register_volunteer, wait_until_known_to_dispatch

POST_LAT, POST_LON = 30.2800, 120.2000


@pytest.fixture(scope="module")
def sw(tmp_path_factory):
    """The generated client package `shouwang_client` (imported from a temporary folder)."""
    out = tmp_path_factory.mktemp("client")
    config = out / "config.yaml"
    config.write_text("post_hooks: []\nproject_name_override: shouwang-client\npackage_name_override: shouwang_client\n"
                      # the printable check-in QR images come back as bytes
                      "content_type_overrides:\n  image/png: application/octet-stream\n  image/svg+xml: application/octet-stream\n")
    generator = Path(sys.executable).parent / "openapi-python-client"
    done = subprocess.run([str(generator), "generate", "--path", str(PUBLIC_OPENAPI), "--config", str(config), "--meta", "none",
                           "--output-path", str(out / "shouwang_client")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("shouwang_client")
    finally:
        sys.path.remove(str(out))


def _api(name: str):
    return importlib.import_module(f"shouwang_client.api.{name}")


def _models():
    return importlib.import_module("shouwang_client.models")


async def test_a_volunteer_works_a_shift_reports_and_reads_the_ledger_with_the_generated_client(platform, sw):
    models = _models()
    async with platform.client() as http:
        county = await build_county(platform, http)
        volunteer = await register_volunteer(http, county, lat=POST_LAT, lon=POST_LON)

        anonymous = sw.Client(base_url=platform.gateway_url, raise_on_unexpected_status=True)
        sent = await _api("auth.request_code").asyncio(client=anonymous, body=models.CodeRequest(phone=volunteer.phone))
        assert isinstance(sent, models.CodeSent)
        code = expect(await http.get(f"/api/v1/auth/dev/codes/{volunteer.phone}"), 200)["code"]  # DEV_MODE only, not in the contract
        tokens = await _api("auth.code_login").asyncio(client=anonymous, body=models.CodeLogin(phone=volunteer.phone, code=code))
        assert isinstance(tokens, models.TokenPair) and tokens.volunteer_id == volunteer.volunteer_id
        phone = sw.AuthenticatedClient(base_url=platform.gateway_url, token=tokens.access_token, raise_on_unexpected_status=True)

        home = await _api("me.home").asyncio(client=phone)
        assert isinstance(home, models.Home)

        await wait_until_known_to_dispatch(platform, [volunteer.volunteer_id])
        op = await activated_operation(http, county, name="类型化客户端演练", post="演练岗", lat=POST_LAT, lon=POST_LON)

    async def offered():
        mine = await _api("dispatch.dispatch_my_assignments").asyncio(client=phone)
        return [a for a in mine if a.operation_id == op["id"]] or None

    offer = (await eventually(offered, timeout_s=30, message="an offer in the phone's feed"))[0]
    assert isinstance(offer, models.AssignmentPublic) and offer.status == "offered"
    accepted = await _api("dispatch.dispatch_accept").asyncio(offer.id, client=phone)
    assert accepted.status == "accepted"
    present = await _api("dispatch.dispatch_check_in").asyncio(offer.id, client=phone, body=models.CheckIn(lat=POST_LAT, lon=POST_LON))
    assert present.status == "checked_in"
    done = await _api("dispatch.dispatch_check_out").asyncio(offer.id, client=phone)
    assert done.status == "checked_out"

    tip = await _api("intel.intel_submit_tip").asyncio(client=phone, body=models.TipCreate(
        category=models.TipCreateCategory.OTHER, text="演练岗附近路灯坏了三盏，晚上很黑"))
    assert isinstance(tip, models.TipAccepted) and not tip.receipt_code  # a volunteer's tip has no receipt
    citizen = await _api("intel.intel_submit_tip").asyncio(client=anonymous, body=models.TipCreate(
        category=models.TipCreateCategory.OTHER, text="桥头那家小卖部晚上卖烟给学生"))
    assert citizen.receipt_code and citizen.receipt_secret
    receipt = await _api("intel.intel_receipt").asyncio(citizen.receipt_code, client=anonymous, x_receipt_secret=citizen.receipt_secret)
    assert isinstance(receipt, models.ReceiptStatus) and receipt.category == "other"

    ledger = await _api("rewards.rewards_my_ledger").asyncio(client=phone)
    assert ledger is not None and not isinstance(ledger, models.Error)
