"""What a grid worker sees of a volunteer must not give the identity number away (issue #23, item 2).

The view is read through the running app on a real database; the candidates are counted exactly: every 18-character
GB 11643 number that agrees with every visible character of the mask, the birth date or age band, the sex, a real
calendar date and the check character. The region is taken as known (the county's codes are public): the strongest
realistic attacker; a hidden region would only add candidates.
"""

from __future__ import annotations

from datetime import date, timedelta

from shouwang_dev.testing import eventually, read_topic
from shouwang_shared.contracts.registry import VolunteerState

from registry.main import MIGRATIONS
from registry.national_id import make_national_id
from tests.registry.test_invites import grid_with_worker

# GB 11643 / ISO 7064 MOD 11-2, as the standard writes it: weights 2^(17-i) mod 11, check character by remainder.
WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
CHECK = "10X98765432"


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _birth_dates(view: dict, today: date) -> list[date]:
    """Every birth date the view allows: the date itself when shown, else every day whose age falls in the band."""
    if view.get("birth_date"):
        return [date.fromisoformat(view["birth_date"])]
    low, high = (int(x) for x in view["age_band"].split("-"))
    day, dates = date(max(1900, today.year - high - 1), 1, 1), []
    while day <= today:
        if low <= _age(day, today) <= high:
            dates.append(day)
        day += timedelta(days=1)
    return dates


def _agrees(mask: str, start: int, digits: str) -> bool:
    """The digits at `start` match every visible (unmasked) character of the mask there."""
    return all(m == "*" or m == d for m, d in zip(mask[start:start + len(digits)], digits, strict=True))


def _weighted(digits: str, start: int) -> int:
    return sum(int(d) * WEIGHTS[start + i] for i, d in enumerate(digits)) % 11


def count_candidates(view: dict, *, region: str, today: date) -> int:
    """How many identity numbers agree with the view, counted by residues mod 11 rather than by trying each one.

    The check character depends on the weighted sum of the first 17 digits mod 11: the 3-digit sequences allowed by
    the mask and the sex are tallied once by their residue, then each allowed date adds the sequences whose residue
    completes a visible check character (all of them when it is hidden).
    """
    mask = view["national_id_masked"]
    assert len(mask) == 18, mask
    assert _agrees(mask, 0, region), (mask, region)
    odd = {"male": True, "female": False}.get(view.get("gender") or "")
    by_residue = [0] * 11
    for sequence in range(1000):
        digits = f"{sequence:03d}"
        if _agrees(mask, 14, digits) and (odd is None or (sequence % 2 == 1) == odd):
            by_residue[_weighted(digits, 14)] += 1
    wanted = [r for r in range(11) if mask[17] in ("*", CHECK[r])]
    region_part = _weighted(region, 0)
    total = 0
    for born in _birth_dates(view, today):
        digits = f"{born:%Y%m%d}"
        if _agrees(mask, 6, digits):
            fixed = (region_part + _weighted(digits, 6)) % 11
            total += sum(by_residue[(r - fixed) % 11] for r in wanted)
    return total


def test_the_count_is_exact_against_trying_every_number_on_a_small_case():
    """The residue count equals trying every number, on a view narrow enough to try them all."""
    number = make_national_id("330102", date(1988, 3, 9), 417)
    today = date(2026, 12, 3)
    view = {"national_id_masked": number[:12] + "*****" + number[17], "gender": "male", "age_band": "30-39"}
    tried = 0
    for day in range(1, 32):
        for sequence in range(1, 1000, 2):  # male: an odd sequence
            first17 = f"{number[:12]}{day:02d}{sequence:03d}"
            checked = CHECK[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]
            tried += checked == number[17]
    assert 1_000 < tried < 2_000
    assert count_candidates(view, region="330102", today=today) == tried
    assert count_candidates({**view, "national_id_masked": number[:17] + "*"}, region="330102", today=today) == 1
    old_view = {"birth_date": "1988-03-09", "gender": "male", "national_id_masked": "330" + "*" * 11 + number[-4:]}
    assert count_candidates(old_view, region="330102", today=today) == 1


async def test_a_grid_workers_view_leaves_at_least_ten_thousand_identity_numbers(registry):
    station, worker, grid, worker_auth = await grid_with_worker(registry)
    national_id = make_national_id("330106", date(1987, 5, 14), 273)
    person = {"real_name": "胡晓燕", "national_id": national_id, "phone": "13957112846", "org_unit_id": station["id"],
              "grid_id": grid["id"]}
    created = await registry.client.post("/v1/volunteers", json=person, headers=registry.admin)
    assert created.status_code == 201, created.text
    volunteer_id = created.json()["id"]

    view = await registry.client.get(f"/v1/volunteers/{volunteer_id}", headers=worker_auth)
    assert view.status_code == 200, view.text
    view = view.json()
    today = date.today()
    candidates = count_candidates(view, region=national_id[:6], today=today)
    assert candidates >= 10_000, (candidates, view["national_id_masked"], view.get("birth_date"), view.get("age_band"))

    # Every other way a grid worker or station admin reads the same volunteer shows no more than this.
    station_admin = registry.auth("station_admin", scope=station["path"])
    reads = [
        (await registry.client.get(f"/v1/volunteers?grid_id={grid['id']}", headers=worker_auth)).json()["items"][0],
        (await registry.client.get(f"/v1/volunteers?org_unit_id={station['id']}", headers=station_admin)).json()["items"][0],
        (await registry.client.get(f"/v1/volunteers/{volunteer_id}", headers=station_admin)).json(),
        (await registry.client.patch(f"/v1/volunteers/{volunteer_id}", json={"skills": ["急救"]}, headers=station_admin)).json(),
        (await registry.client.post(f"/v1/volunteers/{volunteer_id}/activate", headers=station_admin)).json(),
        (await registry.client.get("/v1/volunteers/me", headers=registry.auth("volunteer", vid=volunteer_id))).json(),
    ]
    for read in reads:
        assert "birth_date" not in read and read["national_id_masked"] == view["national_id_masked"], read
        decade = _age(date(1987, 5, 14), today) // 10 * 10
        assert read["age_band"] == view["age_band"] == f"{decade}-{decade + 9}"

    # The county admin gets the birth date only by an audited reveal.
    revealed = await registry.client.post(f"/v1/volunteers/{volunteer_id}/reveal", headers=registry.auth("county_admin", sub="admin-7"),
                                          json={"reason": "核对出生日期", "fields": ["birth_date"]})
    assert revealed.status_code == 200 and revealed.json()["birth_date"] == "1987-05-14" and revealed.json()["national_id"] is None
    audit = await registry.sql("SELECT fields FROM pii_reveals WHERE volunteer_id = CAST(:v AS uuid)", v=volunteer_id)
    assert audit == [(["birth_date"],)]
    # A path that names no volunteer at all is a 404 naming the field, not a database error.
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        missing = await registry.client.post(f"/v1/volunteers/{bad}/reveal", headers=registry.auth("county_admin", sub="admin-7"),
                                             json={"reason": "核对出生日期", "fields": ["birth_date"]})
        assert missing.status_code == 404 and missing.json()["detail"]["field"] == "volunteer_id", missing.text

    async def states():
        messages = await read_topic(registry.stack.bootstrap_servers, f"{registry.stack.topic_prefix}{VolunteerState.TOPIC}")
        return [e for _, e, _ in messages if e.subject == volunteer_id] or None

    for event in await eventually(states, message="the volunteer's state events"):
        raw = event.to_bytes().decode()
        assert "1987-05-14" not in raw and "19870514" not in raw and national_id[-6:] not in raw
        assert not {"birth_date", "national_id_masked", "age_band"} & set(event.data)


async def test_masks_stored_the_old_way_are_cut_down_by_the_migration(registry):
    """Migration 0005 turns a stored `330***********2735` into `3****************5` and leaves new masks alone."""
    _, station = await registry.town_with_station()
    old, person = await registry.volunteer(station)
    new, _ = await registry.volunteer(station)
    number = person["national_id"]
    await registry.sql("UPDATE volunteers SET national_id_masked = :m WHERE id = CAST(:v AS uuid)",
                       m=number[:3] + "*" * 11 + number[-4:], v=old["id"])
    await registry.sql((MIGRATIONS / "0005_stronger_national_id_mask.sql").read_text())
    rows = dict(await registry.sql("SELECT id::text, national_id_masked FROM volunteers WHERE id = ANY(CAST(:v AS uuid[]))",
                                   v=[old["id"], new["id"]]))
    assert rows == {old["id"]: number[0] + "*" * 16 + number[-1], new["id"]: new["national_id_masked"]}
