"""Generated files match their generator; secrets, tools and the full validation command behave."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time

import gen_manifests
import make_secrets
import manifests
import pytest
import validate

from tests.deploy.conftest import REPO, replace_in


def test_generated_files_are_up_to_date():
    stale = gen_manifests.stale_files()
    assert stale == [], f"stale generated files {stale}: run uv run python tools/deploy/gen_manifests.py"


def test_hand_edited_generated_file_is_reported(scratch):
    replace_in(scratch / "deploy" / "k8s" / "base" / "kafka" / "topics.yaml", "partitions: 3", "partitions: 4")
    (scratch / "services" / "rewards" / "Dockerfile").unlink()
    stale = gen_manifests.stale_files(scratch)
    assert "deploy/k8s/base/kafka/topics.yaml" in stale and "services/rewards/Dockerfile" in stale


def test_kubernetes_secrets_are_consistent_and_valid():
    secrets = make_secrets.kubernetes_secrets("shouwang-dev", "shouwang-postgres")
    assert validate.schema_problems(secrets, REPO / "deploy" / "schemas") == []
    by_name = {s["metadata"]["name"]: s["stringData"] for s in secrets}
    assert json.loads(by_name["shouwang-platform"]["JWT_PUBLIC_KEYS"]).keys() == {by_name["gateway-signing"]["JWT_ACTIVE_KID"]}
    assert set(by_name["shouwang-platform"]) == {"JWT_PUBLIC_KEYS"}
    assert len(base64.b64decode(by_name["registry-keys"]["PII_KEY"])) == 32
    for service in manifests.SERVICE_NAMES:
        password = by_name["shouwang-postgres"][f"{service.upper()}_DB_PASSWORD"]
        assert by_name[f"{service}-database"]["DATABASE_URL"] == (
            f"postgresql+asyncpg://{service}:{password}@shouwang-postgres:5432/{service}")


def test_compose_env_files_keep_the_private_key_intact(tmp_path):
    written = make_secrets.write_compose_secrets(tmp_path)
    assert [p.name for p in written] == ["platform.env", "gateway-signing.env", "registry-keys.env", "dispatch-keys.env", "intel-keys.env",
                                         "rewards-keys.env", "gateway-keys.env"]
    line = next(x for x in (tmp_path / "gateway-signing.env").read_text().splitlines() if x.startswith("JWT_PRIVATE_KEY="))
    value = line.split("=", 1)[1]
    assert value.startswith('"-----BEGIN') and "\n" not in value
    assert make_secrets.write_compose_secrets(tmp_path) == [], "existing secrets are kept"


def test_compose_secrets_gain_a_services_new_keys_without_touching_the_others(tmp_path):
    make_secrets.write_compose_secrets(tmp_path)
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    (tmp_path / "dispatch-keys.env").unlink()  # written before dispatch had a key of its own
    assert [p.name for p in make_secrets.write_compose_secrets(tmp_path)] == ["dispatch-keys.env"]
    after = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert {n: t for n, t in after.items() if n != "dispatch-keys.env"} == {n: t for n, t in before.items() if n != "dispatch-keys.env"}
    assert set(make_secrets.read_env_file(tmp_path / "dispatch-keys.env")) == {"PII_KEY"}


def test_missing_tool_fails_with_an_install_hint():
    with pytest.raises(validate.ToolMissing, match="install_tools.sh"):
        validate.tool("kustomize-that-does-not-exist")


def test_install_script_is_idempotent():
    for name in ("kustomize", "promtool"):
        validate.tool(name)  # installed already (by `make install`), else fail here with the hint, not after a build
    started = time.monotonic()
    result = subprocess.run(["bash", str(REPO / "tools" / "deploy" / "install_tools.sh")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10 and "installing" not in result.stderr, "tools already installed must not be rebuilt"
    for name in ("kustomize", "promtool"):
        assert (REPO / ".local" / "bin" / name).exists()


def test_topics_drift_when_the_catalog_grows(monkeypatch):
    import gen_topics

    from shouwang_shared.topics import CATALOG, TopicSpec

    monkeypatch.setattr(sys, "argv", ["gen_topics.py", "--check"])
    assert gen_topics.main() == 0
    monkeypatch.setattr(gen_topics, "CATALOG", CATALOG + (TopicSpec("intel.needs.v1", partitions=3),))
    assert gen_topics.main() == 1
    assert "name: intel.needs.v1" in gen_topics.topics_yaml()
