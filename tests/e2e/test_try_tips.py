"""tools/try_tips.py, the check on unseen tips through the gateway and the police feed, against the real platform."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.e2e.journey import bearer, build_county
from tools import try_tips


def _at(minutes: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=2) + timedelta(minutes=minutes)).isoformat()


async def test_try_tips_scores_the_cases_analysts_see_and_what_the_police_feed_carries(platform):
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=60) as client:
        county = await build_county(platform, client)
        gateway = try_tips.Gateway(client, anonymous_only=True)
        gateway.analyst = bearer(county.analyst_token)

        near = {"lat": 30.4501, "lon": 120.4502, "place_text": None}  # away from other tests' tips, so none joins theirs
        clustering_set = [
            {"id": "a1", "incident": "drugs-1", "category": "drugs", "text": "桥头出租屋天天半夜有人来拿货 车牌浙A7K2Q9", "seen_at": _at(0), **near},
            {"id": "a2", "incident": "drugs-1", "category": "drugs", "text": "浙A7K2Q9那辆白车又停在出租屋门口 一看就是来买东西的", "seen_at": _at(30), **near},
            {"id": "b1", "incident": "fight-1", "category": "public_order", "text": "夜宵摊有人喝多了砸酒瓶", "seen_at": _at(10), **near},
        ]
        clustered = await try_tips.try_clustering(gateway, clustering_set)
        assert clustered == {"tips": 3, "cases": 2, "incidents": 2, "precision": 1.0, "recall": 1.0}

        scammer, own = "17085326614", "13958812047"
        informant_set = [
            {"id": "i1", "category": "fraud", "anonymous": True, "text": f"我叫陈丽萍 骗子用{scammer}打给我要我转钱 我电话{own}",
             "must_remove": ["陈丽萍", own], "must_keep": [scammer], **near},
            # labelled wrongly on purpose: the scammer's number marked as the writer's must be reported as a leak
            {"id": "i2", "category": "fraud", "anonymous": True, "text": f"又有人用{scammer}冒充客服打电话 说要退款",
             "must_remove": [scammer], "must_keep": ["冒充客服"], **near},
        ]
        scored = await try_tips.try_informant(gateway, platform.stack.bootstrap_servers, informant_set,
                                              topic=f"{platform.prefix}intel.liaison.v1")
        assert scored["leaks"] == 1 and scored["failures"] == [f"i2 leaks {scammer!r}"]
        assert scored["suspect_evidence_kept"] == 1.0
