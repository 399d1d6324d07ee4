"""The browser assets served with no CDN are the files of the npm versions the lock file pins, unchanged."""

from __future__ import annotations

import json

import pytest

from tools.console_assets import ASSETS, locked_version, sha256


@pytest.mark.parametrize("folder", sorted(ASSETS), ids=lambda f: f.name)
def test_vendored_files_are_the_locked_versions_unchanged(folder):
    records = json.loads((folder / "VERSIONS.json").read_text(encoding="utf-8"))
    assert set(records) == set(ASSETS[folder]), "run `make console-assets`"
    for name, record in records.items():
        package, _ = ASSETS[folder][name]
        assert record["package"] == package and record["version"] == locked_version(package), f"{name}: run `make console-assets`"
        assert sha256(folder / name) == record["sha256"], f"{name} was edited by hand"
