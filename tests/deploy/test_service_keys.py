"""Each service sees only its own keys: in the rendered Kubernetes overlays, in compose, in the local stack and tests.

The allow-lists below are written out here, apart from the generator's table, so a key added to the wrong
service fails this test instead of changing what it expects.
"""

from __future__ import annotations

import json

import make_secrets
import pytest
import validate
import yaml

from shouwang_dev import testing
from shouwang_dev.stack.services import make_secrets as make_dev_secrets
from shouwang_dev.stack.services import service_env

from tests.deploy.conftest import REPO, replace_in

EVERY_SERVICE = {"JWT_PUBLIC_KEYS", "DATABASE_URL", "KAFKA_SASL_PASSWORD"}  # public keys, its own database and broker user
ROTATION = {"PII_KEY_VERSION", "PII_OLD_KEYS"}
ALLOWED = {
    "registry": {"PII_KEY", "PII_INDEX_KEY", "INVITE_KEY", "CARD_SIGNING_KEY"} | ROTATION,
    "dispatch": {"PII_KEY"} | ROTATION,
    "intel": {"PII_KEY", "RECEIPT_KEY", "PSEUDONYM_KEY"} | ROTATION,
    "rewards": {"PAYOUT_KEY"},
    "gateway": {"LOGIN_CODE_KEY", "VAPID_PRIVATE_KEY", "JWT_PRIVATE_KEY", "JWT_ACTIVE_KID"},
}
KEY_NAMES = {"PII_KEY", "PII_INDEX_KEY", "PII_OLD_KEYS", "INVITE_KEY", "CARD_SIGNING_KEY", "RECEIPT_KEY", "PSEUDONYM_KEY", "LOGIN_CODE_KEY", "VAPID_PRIVATE_KEY", "PAYOUT_KEY",
             "JWT_PRIVATE_KEY"}
NEVER_AT_THE_EDGE = {"PII_KEY", "PII_INDEX_KEY", "PII_OLD_KEYS", "RECEIPT_KEY", "PSEUDONYM_KEY"}


def _secret_names_seen(container: dict, secrets: dict[str, dict[str, str]]) -> dict[str, tuple[str, str]]:
    """{env name: (secret, key)} of every secret value a container sees (a whole Secret mounted counts in full)."""
    seen = {}
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            name = source["secretRef"]["name"]
            seen |= {key: (name, key) for key in secrets.get(name, {})}
    for entry in container.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            seen[entry["name"]] = (ref["name"], ref["key"])
    return seen


def _assert_only_own_keys(service: str, seen: set[str], where: str) -> None:
    extra = seen - EVERY_SERVICE - ALLOWED[service]
    assert not extra, f"{where}: {service} sees keys that are not its own: {sorted(extra)}"
    if service == "gateway":
        assert not seen & NEVER_AT_THE_EDGE, f"{where}: the internet-facing gateway sees {sorted(seen & NEVER_AT_THE_EDGE)}"


@pytest.mark.parametrize("overlay", validate.OVERLAYS)
def test_each_pod_sees_only_the_keys_on_its_allow_list(built, overlay):
    secrets = {s["metadata"]["name"]: s["stringData"] for s in make_secrets.kubernetes_secrets("ns", "db")}
    holders: dict[tuple[str, str], set[str]] = {}
    deployments = [o for o in built[overlay] if o["kind"] == "Deployment" and "app.kubernetes.io/name" in o["metadata"]["labels"]]
    assert {d["metadata"]["labels"]["app.kubernetes.io/name"] for d in deployments} >= set(ALLOWED)
    for deployment in deployments:
        service = deployment["metadata"]["labels"]["app.kubernetes.io/name"]
        if service not in ALLOWED:
            continue
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            seen = _secret_names_seen(container, secrets)
            _assert_only_own_keys(service, set(seen), f"{overlay}/{deployment['metadata']['name']}")
            for name, source in seen.items():
                if name in KEY_NAMES:
                    holders.setdefault(source, set()).add(service)
    shared = {f"{secret}/{key}": sorted(services) for (secret, key), services in holders.items() if len(services) > 1}
    assert not shared, f"one secret key mounted into several services: {shared}"


def test_each_service_gets_keys_of_its_own_not_copies():
    """Registry and intel both seal phones: each under a PII key made for it alone."""
    secrets = {s["metadata"]["name"]: s["stringData"] for s in make_secrets.kubernetes_secrets("ns", "db")}
    values = [value for name, data in secrets.items() if name.endswith("-keys") for value in data.values()]
    assert len(values) >= 6 and len(set(values)) == len(values)


def test_each_compose_container_sees_only_the_keys_on_its_allow_list(tmp_path):
    make_secrets.write_compose_secrets(tmp_path / "deploy" / "compose" / "secrets")
    document = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    checked = set()
    for name, entry in document["services"].items():
        service = name.split("-", 1)[0]  # intel-clustering-worker runs intel
        if service not in ALLOWED:
            continue
        seen = set(entry.get("environment", {}))
        for env_file in entry.get("env_file", []):
            path = tmp_path / env_file
            assert path.exists(), f"{name}: make_secrets.py compose does not write {env_file}"
            seen |= {line.split("=", 1)[0] for line in path.read_text().splitlines() if "=" in line}
        _assert_only_own_keys(service, seen & (KEY_NAMES | {"JWT_ACTIVE_KID"}), f"compose/{name}")
        checked.add(service)
    assert checked == set(ALLOWED)


def test_the_local_stack_and_the_test_helper_hand_each_service_only_its_keys():
    secrets = make_dev_secrets()
    helper = testing.TestStack(pg_admin_url="postgresql://x/postgres", bootstrap_servers="x:9092")
    for service in ALLOWED:
        local = set(service_env(service, port=1, database_url="", bootstrap_servers="", secrets=secrets, service_urls={}))
        _assert_only_own_keys(service, local & KEY_NAMES, "make dev")
        _assert_only_own_keys(service, set(helper.service_env(service, "db")) & KEY_NAMES, "TestStack.service_env")
    registry = service_env("registry", port=1, database_url="", bootstrap_servers="", secrets=secrets, service_urls={})
    intel = service_env("intel", port=1, database_url="", bootstrap_servers="", secrets=secrets, service_urls={})
    dispatch = service_env("dispatch", port=1, database_url="", bootstrap_servers="", secrets=secrets, service_urls={})
    assert len({registry["PII_KEY"], intel["PII_KEY"], dispatch["PII_KEY"]}) == 3, "each service seals personal data under its own key"
    assert intel["PSEUDONYM_KEY"] != intel["RECEIPT_KEY"]


def test_compose_secrets_written_before_the_split_are_split_keeping_the_stored_data_readable(tmp_path):
    """An old platform.env (one key set for all) becomes per-service files; registry keeps the keys its data is under."""
    directory = tmp_path / "secrets"
    directory.mkdir()
    old = {"JWT_PUBLIC_KEYS": json.dumps({"k1": "-----BEGIN PUBLIC KEY-----\nMCow\n-----END PUBLIC KEY-----\n"}),
           "PII_KEY": "b2xkLXBpaS1rZXktb2xkLXBpaS1rZXktb2xkLXBpaS0=", "PII_INDEX_KEY": "b2xkLWluZGV4LWtleS1vbGQtaW5kZXgta2V5LW9sZC0=",
           "RECEIPT_KEY": "b2xkLXJlY2VpcHQta2V5LW9sZC1yZWNlaXB0LWtleS0="}
    (directory / "platform.env").write_text(make_secrets.env_file(old))
    make_secrets.write_compose_secrets(directory)
    platform = make_secrets.read_env_file(directory / "platform.env")
    registry = make_secrets.read_env_file(directory / "registry-keys.env")
    intel = make_secrets.read_env_file(directory / "intel-keys.env")
    assert platform == {"JWT_PUBLIC_KEYS": old["JWT_PUBLIC_KEYS"]}
    assert (registry["PII_KEY"], registry["PII_INDEX_KEY"]) == (old["PII_KEY"], old["PII_INDEX_KEY"])
    assert intel["RECEIPT_KEY"] == old["RECEIPT_KEY"] and intel["PII_KEY"] != old["PII_KEY"]
    assert (intel["PII_KEY_VERSION"], json.loads(intel["PII_OLD_KEYS"])) == ("2", {"1": old["PII_KEY"]})
    assert set(make_secrets.read_env_file(directory / "gateway-keys.env")) == {"LOGIN_CODE_KEY", "VAPID_PRIVATE_KEY"}


def test_validate_catches_a_pod_taking_another_services_key_or_a_whole_secret(scratch):
    path = scratch / "deploy" / "k8s" / "base" / "services" / "registry.yaml"
    replace_in(path, "name: registry-keys\n              key: PII_INDEX_KEY", "name: intel-keys\n              key: PII_INDEX_KEY")
    replace_in(path, "        - configMapRef:\n            name: registry-config\n",
               "        - configMapRef:\n            name: registry-config\n        - secretRef:\n            name: shouwang-platform\n")
    problems = validate.secret_problems(validate.kustomize_build(scratch / "deploy" / "k8s" / "overlays" / "prod"))
    assert "registry: takes PII_INDEX_KEY of Secret intel-keys, not its own" in problems
    assert "registry: mounts Secret shouwang-platform whole; name each key" in problems


def test_a_local_stacks_older_secrets_gain_a_services_new_key_and_keep_the_others(tmp_path):
    from shouwang_dev.stack.__main__ import _load_or_make_secrets

    older = make_dev_secrets()
    del older["keys"]["dispatch"]  # written before dispatch sealed anything
    (tmp_path / "secrets.json").write_text(json.dumps(older))
    loaded = _load_or_make_secrets(tmp_path)
    assert set(loaded["keys"]["dispatch"]) == {"PII_KEY"}
    assert {s: k for s, k in loaded["keys"].items() if s != "dispatch"} == older["keys"]
    assert json.loads((tmp_path / "secrets.json").read_text()) == loaded
    assert _load_or_make_secrets(tmp_path) == loaded, "nothing changes once every key is there"
