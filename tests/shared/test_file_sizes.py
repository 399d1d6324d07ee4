"""No source file of the platform is over 800 lines (checked over the real tree, as `make lint` does)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _checker():
    spec = importlib.util.spec_from_file_location("check_sizes", ROOT / "tools" / "check_sizes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_source_file_is_over_800_lines():
    assert _checker().oversized() == []


def test_the_checker_names_a_file_over_the_limit_and_passes_one_at_it(tmp_path):
    service = tmp_path / "services" / "rewards" / "src" / "rewards"
    service.mkdir(parents=True)
    (service / "long.py").write_text("x = 1\n" * 801)
    (service / "full.py").write_text("x = 1\n" * 800)
    assert _checker().oversized(tmp_path) == ["services/rewards/src/rewards/long.py: 801 lines (at most 800)"]
