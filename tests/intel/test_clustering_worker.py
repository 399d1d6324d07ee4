"""The clustering worker: tips accepted but not yet placed survive a restart and are placed once; a failed batch leaves nothing."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import free_tips
from sqlalchemy import text

from shouwang_dev.testing import eventually, running_app
from shouwang_shared.db import make_engine
from shouwang_shared.migrations import migrate

from intel.cases import clustering, placement
from intel.main import MIGRATIONS, create_app
from intel_helpers import case_of, submit
from tests.intel.conftest import intel_settings


def _plate() -> str:
    return "浙B" + uuid.uuid4().hex[:5].upper().replace("0", "7")


async def _placement(engine) -> dict:
    async with engine.connect() as conn:
        tips = (await conn.execute(text("SELECT id, case_id, cluster_reasons, clustered_at FROM tips"))).all()
        cases = (await conn.execute(text("SELECT id, tip_count, first_tip_id FROM cases"))).all()
    return {"tips": tips, "cases": cases}


async def test_tips_accepted_before_a_crash_are_clustered_once_after_restart(stack):
    prefix = stack.new_prefix()
    await stack.ensure_topics(prefix)
    url = await stack.create_database(f"intel_restart_{uuid.uuid4().hex[:6]}")
    engine = make_engine(url, pool_size=2)
    plate = _plate()
    bodies = [
        {"category": "drugs", "text": f"上塘村卫生院后面那间房子半夜有人进出，门口停一辆黑色桑塔纳，车牌{plate}", "lat": 29.8231, "lon": 120.0012},
        {"category": "drugs", "text": f"上塘村卫生院后面有人贩毒，开黑色桑塔纳，牌照{plate}", "lat": 29.8219, "lon": 120.0001},
        {"category": "counterfeit", "text": "老街口烟酒店在卖假茅台，一瓶才三百", "lat": 29.70, "lon": 119.70},
    ]
    key = str(uuid.uuid4())
    stopped = create_app(intel_settings(stack, url, prefix, run_clustering="false"))  # the process dies before clustering
    async with running_app(stopped) as client:
        first = await client.post("/v1/tips", json=bodies[0], headers={"Idempotency-Key": key})
        retried = await client.post("/v1/tips", json=bodies[0], headers={"Idempotency-Key": key})
        assert first.status_code == retried.status_code == 202 and first.json() == retried.json()
        answers = [first.json()] + [(await client.post("/v1/tips", json=b)).json() for b in bodies[1:]]
    before = await _placement(engine)
    assert len(before["tips"]) == 3 and all(t.case_id is None for t in before["tips"]) and before["cases"] == []

    # two replicas start together: each tip is placed exactly once, duplicates in one case with their reasons
    async with running_app(create_app(intel_settings(stack, url, prefix))), running_app(create_app(intel_settings(stack, url, prefix))):
        async def all_placed():
            now = await _placement(engine)
            return now if all(t.case_id is not None for t in now["tips"]) else None

        after = await eventually(all_placed, timeout_s=20, message="every accepted tip placed in a case")
    by_tip = {str(t.id): t for t in after["tips"]}
    a, b, c = (by_tip[x["tip_id"]] for x in answers)
    assert a.case_id == b.case_id != c.case_id
    assert a.cluster_reasons == ["new_case"] and any(r.startswith("same_identifier:") for r in b.cluster_reasons)
    assert all(t.clustered_at is not None for t in after["tips"])
    counts = {str(cs.id): cs.tip_count for cs in after["cases"]}
    assert counts == {str(a.case_id): 2, str(c.case_id): 1}
    assert {str(cs.first_tip_id) for cs in after["cases"]} == {answers[0]["tip_id"], answers[2]["tip_id"]}
    await engine.dispose()


async def test_a_batch_that_fails_midway_writes_nothing_and_is_placed_on_retry(intel, monkeypatch):
    real_write = placement._write
    failures = []

    async def write_then_fail(conn, **kw):
        await real_write(conn, **kw)
        if not failures:
            failures.append(1)
            raise ConnectionResetError("database went away mid-batch")

    monkeypatch.setattr(placement, "_write", write_then_fail)
    plate = _plate()
    one = await submit(intel, {"category": "fugitive", "text": f"枫林村出租屋来了个光头男的，很像通缉犯，开{plate}", "lat": 29.98, "lon": 119.91})
    two = await submit(intel, {"category": "fugitive", "text": f"枫林村出租屋那个光头，车牌{plate}，像网上通缉的人", "lat": 29.981, "lon": 119.911})
    case_id = await case_of(intel, one["tip_id"])
    assert await case_of(intel, two["tip_id"]) == case_id and failures == [1]
    async with intel.engine.connect() as conn:
        orphans = await conn.scalar(text("SELECT count(*) FROM cases c WHERE NOT EXISTS (SELECT 1 FROM tips t WHERE t.case_id = c.id)"
                                         " AND c.merged_into IS NULL"))
        count = await conn.scalar(text("SELECT tip_count FROM cases WHERE id = :id"), {"id": case_id})
    assert orphans == 0 and count == 2


async def test_a_tip_that_cannot_be_placed_is_set_aside_and_the_tips_after_it_still_get_cases(intel, monkeypatch):
    """A poison tip (here: clustering raises on it) must not block the queue: the worker narrows the batch down to
    it, sets it aside with the error after three tries alone, and places the others."""
    real_best_case = placement.clustering.best_case

    def best_case_failing_on_poison(tip, profiles):
        if "毒丸" in tip.text:
            raise ValueError("clustering cannot read this tip")
        return real_best_case(tip, profiles)

    monkeypatch.setattr(placement.clustering, "best_case", best_case_failing_on_poison)
    set_aside_before = placement.TIPS_SET_ASIDE._value.get()
    poison = await submit(intel, {"category": "fraud", "text": "毒丸：这条线索让聚类出错", "lat": 29.5, "lon": 119.5})
    after = [await submit(intel, {"category": "fraud", "text": f"{n}号楼有人上门推销假保健品，专骗老人", "lat": 29.6 + n / 100, "lon": 119.6})
             for n in range(3)]
    for accepted in after:
        assert await case_of(intel, accepted["tip_id"]) != "None"

    async def set_aside():
        async with intel.engine.connect() as conn:
            row = (await conn.execute(text("SELECT case_id, clustering_failed_at, clustering_error FROM tips WHERE id = :id"),
                                      {"id": poison["tip_id"]})).one()
        return row if row.clustering_failed_at is not None else None

    row = await eventually(set_aside, timeout_s=20, message="the poison tip set aside")
    assert row.case_id is None and "clustering cannot read this tip" in row.clustering_error
    assert placement.TIPS_SET_ASIDE._value.get() == set_aside_before + 1


async def test_a_worker_in_another_process_is_woken_by_the_intake_commit_not_by_its_poll(stack):
    """The deployed split: API replicas without the worker, the worker on its own; an intake commit NOTIFYs it."""
    prefix = stack.new_prefix()
    await stack.ensure_topics(prefix)
    url = await stack.create_database(f"intel_split_{uuid.uuid4().hex[:6]}")
    engine = make_engine(url, pool_size=2)
    api = create_app(intel_settings(stack, url, prefix, run_clustering="false"))
    worker = create_app(intel_settings(stack, url, prefix, cluster_poll_interval_s="60"))  # its poll would take a minute
    try:
        async with running_app(worker), running_app(api) as client:
            async def listening():
                async with engine.connect() as conn:
                    return (await conn.execute(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"))).scalar()

            await eventually(listening, timeout_s=20, message="the worker listens for intake commits")
            accepted = await client.post("/v1/tips", json={"category": "fraud", "text": "有人冒充客服打电话让转账到安全账户", "lat": 29.9, "lon": 120.1})
            assert accepted.status_code == 202
            placed = await case_of(None, accepted.json()["tip_id"], engine=engine)  # waits 10 s at most
        assert placed != "None"
    finally:
        await engine.dispose()


async def test_two_replicas_cluster_the_free_tips_exactly_as_the_pure_module(stack):
    """Issue #17: the service path gives the same quality as the pure module; issue #22: so do two replicas clustering
    at once (each takes the categories the other does not hold). The hand-written tuning set is posted through the API
    in the order seen; the cases the workers give are the clusters `cluster_offline` gives."""
    prefix = stack.new_prefix()
    await stack.ensure_topics(prefix)
    url = await stack.create_database(f"intel_free_{uuid.uuid4().hex[:6]}")
    engine = make_engine(url, pool_size=2)
    data = sorted(free_tips.load_sets()["tune"], key=lambda t: t["seen_at"])
    tip_of: dict[str, str] = {}
    try:
        second = create_app(intel_settings(stack, url, prefix, run_clustering="true", cluster_batch_size="8"))
        async with running_app(second), running_app(create_app(intel_settings(stack, url, prefix, cluster_batch_size="8"))) as client:
            for t in data:
                body = {k: t[k] for k in ("category", "text", "seen_at", "lat", "lon", "place_text") if t[k] is not None}
                resp = await client.post("/v1/tips", json=body)
                assert resp.status_code == 202, resp.text
                tip_of[resp.json()["tip_id"]] = t["id"]

            async def all_placed():
                async with engine.connect() as conn:
                    rows = (await conn.execute(text("SELECT id, case_id FROM tips"))).all()
                return rows if len(rows) == len(data) and all(r.case_id for r in rows) else None

            rows = await eventually(all_placed, timeout_s=60, message="every free tip placed")
        by_service = {tip_of[str(r.id)]: str(r.case_id) for r in rows}
        by_module = clustering.cluster_offline([
            clustering.TipFeatures(t["id"], t["category"], t["text"], datetime.fromisoformat(t["seen_at"]), t["lat"], t["lon"], t["place_text"])
            for t in data
        ])
        assert clustering.pairwise_precision_recall(by_service, by_module) == (1.0, 1.0)
    finally:
        await engine.dispose()


async def test_a_second_writer_takes_the_categories_the_first_does_not_hold(stack):
    """Each clustering transaction locks the categories it places (the one waiting longest first, until the batch is
    full): a second writer gets the others, a third none while every category with tips waiting is held."""
    url = await stack.create_database(f"intel_lock_{uuid.uuid4().hex[:6]}")
    engine = make_engine(url, pool_size=1)
    await migrate(engine, MIGRATIONS)
    await engine.dispose()
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    writers = [await asyncpg.connect(dsn) for _ in range(3)]
    try:
        await writers[0].execute(
            "INSERT INTO tips (id, request_hash, reporter_kind, category, text, channel, submitted_at) SELECT gen_random_uuid(), 'h',"
            " 'anonymous', c, '可疑', 'app', now() - make_interval(hours => n) FROM unnest(ARRAY['fraud', 'drugs', 'fraud', 'fugitive'],"
            " ARRAY[4, 3, 2, 1]) AS x(c, n)")
        assert [r["category"] for r in await writers[0].fetch(placement.WAITING_BY_CATEGORY)] == ["fraud", "drugs", "fugitive"]
        transactions = [w.transaction() for w in writers]
        for t in transactions:
            await t.start()
        assert await placement._claim_categories(writers[0], 2) == ["fraud"]  # two tips waiting there: the batch is full
        assert await placement._claim_categories(writers[1], 100) == ["drugs", "fugitive"]
        assert await placement._claim_categories(writers[2], 100) is None  # tips wait, all held: look again shortly
        await transactions[0].rollback()
        assert await placement._claim_categories(writers[2], 100) == ["fraud"]
        for t in transactions[1:]:
            await t.rollback()
    finally:
        for w in writers:
            await w.close()
