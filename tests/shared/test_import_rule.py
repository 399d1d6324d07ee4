"""Services import the shared library and never each other (checked over the real tree)."""

from __future__ import annotations

from tools import check_imports


def test_no_service_imports_another():
    assert check_imports.violations() == []


def test_the_checker_catches_a_cross_service_import(tmp_path):
    bad = tmp_path / "services" / "rewards" / "src" / "rewards"
    bad.mkdir(parents=True)
    (bad / "x.py").write_text("from intel.models import Tip\n")
    (tmp_path / "shared" / "src").mkdir(parents=True)
    assert check_imports.violations(tmp_path) == ["services/rewards/src/rewards/x.py:1: rewards imports intel"]


def test_the_checker_catches_runtime_code_importing_the_dev_tools(tmp_path):
    service = tmp_path / "services" / "registry" / "src" / "registry"
    service.mkdir(parents=True)
    (service / "x.py").write_text("from shouwang_dev.demo import load_demo\n")
    shared = tmp_path / "shared" / "src" / "shouwang_shared"
    shared.mkdir(parents=True)
    (shared / "y.py").write_text("import shouwang_dev.testing\n")
    assert check_imports.violations(tmp_path) == [
        "services/registry/src/registry/x.py:1: runtime code imports shouwang_dev (dev tools never ship in an image)",
        "shared/src/shouwang_shared/y.py:1: runtime code imports shouwang_dev (dev tools never ship in an image)",
    ]
