"""Send a labelled set of tips through a running platform's gateway (`make dev`) and score what comes out.

This is how to check the intel service on tips nobody tuned it on, the way a county would see it: through the
public gateway, with the demo county's analyst, and reading the police feed with a plain Kafka consumer (raw
JSON, none of our libraries), as a police liaison system does.

- A clustering set (`tests/intel/data/free_tips/README.md` format, with `incident` labels): every tip is posted in
  the order it was seen; then the analyst's cases are read back and compared with the labels (pairwise precision
  and recall, as in `make bench`).
- An informant set (`tests/intel/data/informant/README.md` format, with `must_remove` / `must_keep`): every tip
  is posted as a case of its own (times 11 days apart, so no two join), the analyst verifies and forwards it
  without editing, and the summary is read from `intel.liaison.v1`. A `must_remove` item found in the message is
  a leak; a `must_keep` item missing is lost evidence (the same comparison as `bench/liaison.py`).

Tips marked `anonymous` (and, with `--anonymous`, every tip) are posted without a login, and wait out the
gateway's limit on anonymous writes (5 a minute from one address); the others are posted by a demo volunteer.
Run it against a fresh `make dev`: tips of an earlier run are still open cases that new tips may join.

    uv run python tools/try_tips.py --gateway http://127.0.0.1:8080 --bootstrap 127.0.0.1:59092 \\
        --clustering my_tips.json --informant my_informant_tips.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.liaison import score  # noqa: E402 - the leak and evidence comparison of make bench
from intel.cases.clustering import pairwise_precision_recall  # noqa: E402

DEV_PASSWORD = "shouwang-dev"
DEV_PHONE = "13800000001"
LIAISON_TOPIC = "intel.liaison.v1"


class Gateway:
    """The calls a citizen, a volunteer and an analyst make, through the public gateway only."""

    def __init__(self, client: httpx.AsyncClient, *, anonymous_only: bool) -> None:
        self.client, self.anonymous_only = client, anonymous_only
        self.analyst: dict[str, str] = {}
        self.volunteer: dict[str, str] = {}

    async def log_in(self, analyst: str, password: str, phone: str) -> None:
        """Sign in the analyst with a password and the volunteer with a login code (DEV_MODE shows the code)."""
        answer = (await self.client.post("/api/v1/auth/login", json={"username": analyst, "password": password})).raise_for_status()
        self.analyst = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        if self.anonymous_only:
            return
        (await self.client.post("/api/v1/auth/codes", json={"phone": phone})).raise_for_status()
        code = (await self.client.get(f"/api/v1/auth/dev/codes/{phone}")).raise_for_status().json()["code"]
        answer = (await self.client.post("/api/v1/auth/code-login", json={"phone": phone, "code": code})).raise_for_status()
        self.volunteer = {"Authorization": f"Bearer {answer.json()['access_token']}"}

    async def post_tip(self, body: dict, *, anonymous: bool) -> str:
        """Post one tip (waiting out the rate limit); its id."""
        headers = {} if anonymous or self.anonymous_only else self.volunteer
        for _ in range(60):
            answer = await self.client.post("/api/v1/tips", json=body, headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
            if answer.status_code != 429:
                return answer.raise_for_status().json()["tip_id"]
            await asyncio.sleep(int(answer.headers.get("Retry-After", "5")))
        raise TimeoutError("the gateway kept refusing tips (429)")

    async def cases_of(self, tip_ids: set[str], *, timeout_s: float = 120) -> dict[str, str]:
        """The case each tip was placed in, as the analyst sees the cases."""
        placed: dict[str, str] = {}
        deadline = time.monotonic() + timeout_s
        while tip_ids - placed.keys() and time.monotonic() < deadline:
            listed = (await self.client.get("/api/v1/cases", headers=self.analyst, params={"limit": 500})).raise_for_status()
            for case in listed.json():
                detail = (await self.client.get(f"/api/v1/cases/{case['case_id']}", headers=self.analyst)).raise_for_status()
                placed |= {t["tip_id"]: case["case_id"] for t in detail.json()["tips"] if t["tip_id"] in tip_ids}
            await asyncio.sleep(1)
        if tip_ids - placed.keys():
            raise TimeoutError(f"{len(tip_ids - placed.keys())} tips were never placed in a case")
        return placed

    async def forward(self, case_id: str) -> None:
        """Verify the case and forward it to the police with the drafted summary, unedited."""
        for action in ("verify", "forward"):
            (await self.client.post(f"/api/v1/cases/{case_id}/{action}", headers=self.analyst)).raise_for_status()


def _tip_body(tip: dict, seen_at: datetime | None = None) -> dict:
    body = {"category": tip["category"], "text": tip["text"]}
    for key in ("lat", "lon", "place_text"):
        if tip.get(key) is not None:
            body[key] = tip[key]
    when = seen_at or (datetime.fromisoformat(tip["seen_at"]) if tip.get("seen_at") else None)
    if when is not None:
        body["seen_at"] = when.isoformat()
    return body


async def try_clustering(gateway: Gateway, tips: list[dict]) -> dict[str, float]:
    """Post a labelled clustering set; pairwise precision and recall of the cases the analyst sees."""
    ids: dict[str, str] = {}
    for tip in sorted(tips, key=lambda t: t["seen_at"]):
        ids[await gateway.post_tip(_tip_body(tip), anonymous=bool(tip.get("anonymous")))] = tip["id"]
    placed = await gateway.cases_of(set(ids))
    predicted = {ids[tip_id]: case_id for tip_id, case_id in placed.items()}
    precision, recall = pairwise_precision_recall(predicted, {t["id"]: t["incident"] for t in tips})
    return {"tips": len(tips), "cases": len(set(predicted.values())), "incidents": len({t["incident"] for t in tips}),
            "precision": round(precision, 3), "recall": round(recall, 3)}


async def try_informant(gateway: Gateway, bootstrap: str, tips: list[dict], *, topic: str = LIAISON_TOPIC) -> dict[str, object]:
    """Post each informant tip as its own case, forward it, and score what the police feed carries."""
    start = datetime.now(UTC) - timedelta(days=11 * len(tips) + 1)
    ids = {}
    for i, tip in enumerate(tips):
        body = _tip_body(tip, seen_at=start + timedelta(days=11 * i))
        ids[await gateway.post_tip(body, anonymous=bool(tip.get("anonymous")))] = tip["id"]
    placed = await gateway.cases_of(set(ids))
    if len(set(placed.values())) != len(placed):
        raise RuntimeError("two informant tips joined one case; space them further apart")
    for case_id in placed.values():
        await gateway.forward(case_id)
    messages = await _read_feed(bootstrap, topic, set(placed.values()))
    summaries = {ids[tip_id]: messages.get(case_id, "") for tip_id, case_id in placed.items()}
    result = score(tips, summaries)
    return {"tips": len(tips), "identifiers": sum(len(t["must_remove"]) for t in tips), "leaks": result["leaks"],
            "suspect_evidence_kept": round(result["kept"], 3), "failures": result["failures"]}


async def _read_feed(bootstrap: str, topic: str, case_ids: set[str], timeout_s: float = 60) -> dict[str, str]:
    """Every message on the police feed about these cases, as text, read by a plain consumer from the start."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    found: dict[str, str] = {}
    try:
        deadline = time.monotonic() + timeout_s
        while case_ids - found.keys() and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    message = json.loads(record.value)
                    case_id = (message.get("data") or {}).get("case_id") or message.get("subject")
                    if case_id in case_ids:  # compared as a reader sees it: escaped characters unescaped
                        found[case_id] = json.dumps(message, ensure_ascii=False)
    finally:
        await consumer.stop()
    return found


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", required=True, help="the gateway's base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--bootstrap", required=True, help="the Kafka bootstrap servers the police read from")
    parser.add_argument("--clustering", type=Path, help="a labelled clustering set (JSON list with `incident`)")
    parser.add_argument("--informant", type=Path, help="an informant set (JSON list with `must_remove`/`must_keep`)")
    parser.add_argument("--analyst", default="analyst")
    parser.add_argument("--password", default=DEV_PASSWORD)
    parser.add_argument("--phone", default=DEV_PHONE, help="the demo volunteer who posts tips not marked anonymous")
    parser.add_argument("--anonymous", action="store_true", help="post every tip without a login (slow: 5 a minute)")
    args = parser.parse_args(argv)
    report: dict[str, object] = {}
    async with httpx.AsyncClient(base_url=args.gateway, timeout=60) as client:
        gateway = Gateway(client, anonymous_only=args.anonymous)
        await gateway.log_in(args.analyst, args.password, args.phone)
        if args.clustering:
            report["clustering"] = await try_clustering(gateway, json.loads(args.clustering.read_text(encoding="utf-8")))
        if args.informant:
            report["informant"] = await try_informant(gateway, args.bootstrap, json.loads(args.informant.read_text(encoding="utf-8")))
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
