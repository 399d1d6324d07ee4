"""No source file of the platform is over 800 lines (checked over the real tree, as `make lint` does)."""

from __future__ import annotations

from tools import check_sizes


def test_no_source_file_is_over_800_lines():
    assert check_sizes.oversized() == []


def test_the_checker_names_a_file_over_the_limit_and_passes_one_at_it(tmp_path):
    service = tmp_path / "services" / "rewards" / "src" / "rewards"
    service.mkdir(parents=True)
    (service / "long.py").write_text("x = 1\n" * 801)
    (service / "full.py").write_text("x = 1\n" * 800)
    assert check_sizes.oversized(tmp_path) == ["services/rewards/src/rewards/long.py: 801 lines (at most 800)"]
