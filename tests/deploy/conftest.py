"""Fixtures of the deploy checks: the validation library on the path and a scratch copy of the repository's deploy files."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools" / "deploy"))

import manifests  # noqa: E402
import validate  # noqa: E402


@pytest.fixture(scope="session")
def built() -> dict[str, list[dict]]:
    """The rendered objects of every overlay (kustomize build runs once per session)."""
    return {o: validate.kustomize_build(REPO / "deploy" / "k8s" / "overlays" / o) for o in validate.OVERLAYS}


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A copy of everything the deploy checks read, to break on purpose."""
    shutil.copytree(REPO / "deploy", tmp_path / "deploy")
    shutil.copytree(REPO / "docs" / "runbooks", tmp_path / "docs" / "runbooks")
    shutil.copy(REPO / "docker-compose.yml", tmp_path / "docker-compose.yml")
    for service in manifests.SERVICE_NAMES:
        (tmp_path / "services" / service).mkdir(parents=True)
        shutil.copy(REPO / "services" / service / "Dockerfile", tmp_path / "services" / service / "Dockerfile")
    return tmp_path


def replace_in(path: Path, old: str, new: str, count: int = 1) -> None:
    """Edit a scratch file, failing loudly if the text to break is not there."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))
