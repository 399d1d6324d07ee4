"""Run every benchmark module and write `bench/results/latest.json` with only measured figures."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from shouwang_dev.testing import start_test_stack, stop_test_stack

from bench.stats import settle_database

BENCH_DIR = Path(__file__).resolve().parent
ORDER = ["machine", "foundation", "registry", "dispatch", "intel", "rewards", "gateway", "e2e"]


def machine() -> str:
    """A one-line description of the machine the figures were measured on."""
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, Python {platform.python_version()}, {platform.system()}"


def modules(selected: list[str]) -> list[str]:
    """Benchmark module names to run, in a stable order."""
    found = sorted(p.stem for p in BENCH_DIR.glob("*.py") if p.stem not in {"__init__", "run", "chaos"} and not p.stem.startswith("_"))
    names = [n for n in ORDER if n in found] + [n for n in found if n not in ORDER]
    return [n for n in names if not selected or n in selected]


async def run_all(selected: list[str]) -> dict:
    """Run the benchmarks against one real stack; a failing benchmark leaves its figures absent."""
    stack = await asyncio.to_thread(start_test_stack, private=True, durable=True)  # timed commits are real, fsynced ones
    figures: dict[str, float] = {}
    failures: dict[str, str] = {}
    try:
        for name in modules(selected):
            module = importlib.import_module(f"bench.{name}")
            if not hasattr(module, "run"):
                continue
            await settle_database(stack)  # each benchmark starts on a server that has flushed the previous one's writes
            started = time.monotonic()
            print(f"== bench {name}", flush=True)
            try:
                result = await module.run(stack)
                for key, value in result.items():
                    figures[key] = round(float(value), 3)
                print(f"   {json.dumps(result, ensure_ascii=False)} ({time.monotonic() - started:.0f}s)", flush=True)
            except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
                failures[name] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
    finally:
        await asyncio.to_thread(stop_test_stack, stack)
    return {"figures": figures, "failures": failures}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("only", nargs="*", help="benchmark modules to run (default: all)")
    args = parser.parse_args()
    outcome = asyncio.run(run_all(args.only))
    out = BENCH_DIR / "results" / "latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()) if out.exists() and args.only else {"figures": {}}
    figures = {**previous.get("figures", {}), **outcome["figures"]}
    report = {"figures": figures, "machine": machine(), "when": datetime.now(UTC).isoformat(timespec="seconds")}
    if outcome["failures"]:
        report["failures"] = outcome["failures"]
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out}")
    return 1 if outcome["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
