"""Police summary figures: informant identifiers leaked and suspect evidence kept, over every corpus file.

The corpora are tests/intel/data/informant/*.json (a list of tips, each with `must_remove` and `must_keep`
substrings of its text). Measured twice: the pure drafting module (with its CPU per case), and once through a
running intel service: each tip submitted over HTTP, verified, forwarded without a body, and the summary read back
by a plain Kafka consumer on `intel.liaison.v1`.

A must_remove item leaks when its comparable form (full-width and Chinese-numeral digits as ASCII, spaces, dashes
and +86/0086 dropped, letters lower-cased) is in the comparable form of the summary; a name leaks when it appears
as written. `suspect_evidence_kept` is the share of must_keep items whose comparable form is in the summary.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path

import httpx

from shouwang_dev.testing import read_topic
from shouwang_shared.auth import Role

from intel.cases.police_summary import TipText, draft, normalise

CORPUS_DIR = Path(__file__).resolve().parents[1] / "tests" / "intel" / "data" / "informant"


def load_corpora() -> dict[str, list[dict]]:
    """Every corpus file by its stem (tune, holdout, …)."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(CORPUS_DIR.glob("*.json"))}


def leaked(item: str, summary: str) -> bool:
    """Whether one identifier that had to go is still in the summary."""
    norm = normalise(item)
    return item in summary or (len(norm) >= 1 and norm in normalise(summary) and not _is_plain_words(item))


def _is_plain_words(item: str) -> bool:
    """Chinese words (names, addresses) are compared as written; digits and handles in comparable form too."""
    return not any(ch.isdigit() or ch.isascii() and ch.isalpha() for ch in normalise(item))


def kept(item: str, summary: str) -> bool:
    """Whether one piece of suspect evidence is in the summary."""
    return normalise(item) in normalise(summary)


def score(tips: list[dict], summaries: dict[str, str]) -> dict[str, object]:
    """Leaks, evidence kept and the failures of one corpus, given each tip's summary by id."""
    leaks, kept_n, keep_total, failures = 0, 0, 0, []
    for tip in tips:
        summary = summaries[tip["id"]]
        for item in tip["must_remove"]:
            if leaked(item, summary):
                leaks += 1
                failures.append(f"{tip['id']} leaks {item!r}")
        for item in tip["must_keep"]:
            keep_total += 1
            if kept(item, summary):
                kept_n += 1
            else:
                failures.append(f"{tip['id']} lost {item!r}")
    return {"leaks": leaks, "kept": kept_n / keep_total if keep_total else 1.0, "failures": failures, "keep_total": keep_total}


def pure_summaries(tips: list[dict]) -> tuple[dict[str, str], float]:
    """Each tip drafted alone as a one-tip case, and the CPU milliseconds per case."""
    started = time.process_time()
    out = {t["id"]: draft(t["category"], [TipText(t["text"])]).summary for t in tips}
    return out, (time.process_time() - started) * 1000 / max(1, len(tips))


def _figures(prefix: str, by_file: dict[str, dict]) -> dict[str, float]:
    figures: dict[str, float] = {}
    total_leaks, total_kept, total_keep = 0, 0.0, 0
    for name, s in by_file.items():
        figures[f"{prefix}informant_leaks_{name}"] = s["leaks"]
        figures[f"{prefix}suspect_evidence_kept_{name}"] = round(s["kept"], 3)
        total_leaks += s["leaks"]
        total_kept += s["kept"] * s["keep_total"]
        total_keep += s["keep_total"]
    figures[f"{prefix}informant_leaks"] = total_leaks
    figures[f"{prefix}suspect_evidence_kept"] = round(total_kept / total_keep, 3) if total_keep else 1.0
    return figures


RANDOM_IDS_AND_TIMES = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # event, case and correlation ids
    r"|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?"  # event and case times
)


def without_ids_and_times(message: str) -> str:
    """The message a police system reads, less its random ids and its times: a short number that must go (a phone's
    last four digits, 一五八) is otherwise found by chance in a UUID or in the microseconds of a time, and counted as
    a leak (`feed_informant_leaks` was 0 and 1 in two runs of the same code on 4 Dec)."""
    return RANDOM_IDS_AND_TIMES.sub(" ", message)


async def _service_summaries(stack, tips: list[dict]) -> dict[str, str]:
    """Each tip through a running intel service as its own case, and the summaries a plain consumer reads."""
    from bench.intel import _start_service  # noqa: PLC0415 - the same service start as the intel bench

    prefix = stack.new_prefix()
    await stack.ensure_topics(prefix)
    url = await stack.create_database(f"bench_liaison_{uuid.uuid4().hex[:6]}")
    service, base = await _start_service(stack, url, prefix)
    analyst = {"Authorization": f"Bearer {stack.token(Role.ANALYST, sub='bench-analyst', scope_path='/c1', ttl_s=3600)}"}
    case_of_tip: dict[str, str] = {}
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for i, tip in enumerate(tips):
                # far apart in space so that no two corpus tips join one case
                body = {"category": tip["category"], "text": tip["text"], "lat": 10.0 + (i % 150) * 0.4, "lon": 80.0 + (i // 150) * 2.0}
                answer = (await client.post("/v1/tips", json=body)).raise_for_status().json()
                case_of_tip[tip["id"]] = await _case_of(client, analyst, answer["tip_id"])
            for tip in tips:
                case_id = case_of_tip[tip["id"]]
                (await client.post(f"/v1/cases/{case_id}/verify", headers=analyst)).raise_for_status()
                (await client.post(f"/v1/cases/{case_id}/forward", headers=analyst)).raise_for_status()
        wanted = set(case_of_tip.values())
        by_case: dict[str, str] = {}
        deadline = time.monotonic() + 60
        while wanted - by_case.keys() and time.monotonic() < deadline:
            for _, env, _ in await read_topic(stack.bootstrap_servers, f"{prefix}intel.liaison.v1"):
                if not isinstance(env, bytes) and env.subject in wanted:
                    by_case[env.subject] = without_ids_and_times(json.dumps(env.model_dump(mode="json"), ensure_ascii=False))
            await asyncio.sleep(0.5)
    finally:
        service.stop()
    return {tid: by_case.get(cid, "") for tid, cid in case_of_tip.items()}


async def _case_of(client: httpx.AsyncClient, analyst: dict, tip_id: str) -> str:
    for _ in range(200):
        cases = (await client.get("/v1/cases", headers=analyst, params={"limit": 500})).json()
        for case in cases:
            if case["first_tip_id"] == tip_id:
                return case["case_id"]
        await asyncio.sleep(0.05)
    raise TimeoutError(f"tip {tip_id} was never placed in a case")


async def run(stack) -> dict[str, float]:
    """Figures of the pure module over every corpus file, then one pass through the service and the topic."""
    corpora = load_corpora()
    by_file, cpu = {}, []
    for name, tips in corpora.items():
        summaries, ms = pure_summaries(tips)
        by_file[name] = score(tips, summaries)
        cpu.append(ms)
    figures = _figures("", by_file)
    figures["police_summary_cpu_ms_per_case"] = round(sum(cpu) / len(cpu), 3)
    through = {name: score(tips, await _service_summaries(stack, tips)) for name, tips in corpora.items()}
    figures.update(_figures("feed_", through))
    return figures


def main() -> None:
    """Print the pure figures and each failure (no stack needed)."""
    for name, tips in load_corpora().items():
        summaries, ms = pure_summaries(tips)
        s = score(tips, summaries)
        print(f"{name}: {len(tips)} tips, leaks {s['leaks']}, kept {s['kept']:.3f} of {s['keep_total']}, {ms:.2f} ms CPU per case")
        for f in s["failures"]:
            print("   ", f)


if __name__ == "__main__":
    main()
