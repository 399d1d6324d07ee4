"""The Kustomize overlays build, validate against the bundled schemas and follow the platform's rules."""

from __future__ import annotations

from pathlib import Path

import manifests
import pytest
import validate
import yaml

from shouwang_shared.topics import CATALOG

from tests.deploy.conftest import REPO, replace_in

SCHEMAS = REPO / "deploy" / "schemas"


@pytest.mark.parametrize("overlay", validate.OVERLAYS)
def test_overlay_validates_against_bundled_schemas(built, overlay):
    objects = built[overlay]
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "KafkaTopic", "KafkaUser", "Kafka", "KafkaNodePool", "ServiceMonitor", "PrometheusRule"} <= kinds
    assert validate.schema_problems(objects, SCHEMAS) == []


@pytest.mark.parametrize("overlay", validate.OVERLAYS)
def test_overlay_follows_platform_rules(built, overlay):
    objects = built[overlay]
    problems = (validate.service_problems(objects) + validate.kafka_problems(objects)
                + validate.ingress_problems(objects) + validate.secret_problems(objects) + validate.monitoring_problems(objects))
    assert problems == []


@pytest.mark.parametrize("overlay", validate.OVERLAYS)
def test_every_catalog_topic_has_its_kafka_topic(built, overlay):
    topics = {o["spec"]["topicName"]: o for o in built[overlay] if o["kind"] == "KafkaTopic"}
    assert set(topics) == {spec.name for spec in CATALOG}
    replicas = {o["spec"]["replicas"] for o in topics.values()}
    assert replicas == ({1} if overlay == "dev" else {3})


def test_police_user_reads_liaison_and_writes_dispositions_only(built):
    police = next(o for o in built["prod"] if o["kind"] == "KafkaUser" and o["metadata"]["name"] == "police-liaison")
    granted = {(a["resource"]["type"], a["resource"]["name"], a["resource"]["patternType"], op)
               for a in police["spec"]["authorization"]["acls"] for op in a["operations"]}
    assert granted == {
        ("topic", "intel.liaison.v1", "literal", "Read"), ("topic", "intel.liaison.v1", "literal", "Describe"),
        ("group", "police-liaison", "literal", "Read"),
        ("topic", "police.dispositions.v1", "literal", "Write"), ("topic", "police.dispositions.v1", "literal", "Describe"),
    }
    assert police["spec"]["authentication"]["type"] == "tls"


def test_only_the_gateway_admits_the_ingress_controller(built):
    policies = {o["metadata"]["name"]: o for o in built["prod"] if o["kind"] == "NetworkPolicy"}
    admitting = {name for name, p in policies.items() for rule in p["spec"]["ingress"] for peer in rule["from"]
                 if peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == "ingress-nginx"}
    assert admitting == {"gateway"}
    ingress = next(o for o in built["prod"] if o["kind"] == "Ingress")
    assert ingress["spec"]["tls"][0]["hosts"] == ["shouwang.example.org"]


def test_prod_reaches_the_database_by_address_block_and_dev_by_pod(built):
    for overlay, expected in (("prod", {"ipBlock": {"cidr": "10.20.30.0/24"}}),
                              ("dev", {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "shouwang-postgres"}}})):
        for policy in (o for o in built[overlay] if o["kind"] == "NetworkPolicy"):
            database_rules = [r for r in policy["spec"]["egress"] if r["ports"] == [{"protocol": "TCP", "port": 5432}]]
            assert [r["to"] for r in database_rules] == [[expected]], (overlay, policy["metadata"]["name"])


def test_dev_overlay_runs_one_replica_with_a_local_database(built):
    objects = built["dev"]
    assert {o["spec"]["replicas"] for o in objects if o["kind"] == "Deployment"} == {1}
    assert all("maxUnavailable" in o["spec"] for o in objects if o["kind"] == "PodDisruptionBudget")
    assert any(o["kind"] == "StatefulSet" and o["metadata"]["name"] == "shouwang-postgres" for o in objects)
    assert all(o["metadata"].get("namespace") == "shouwang-dev" for o in objects if o["kind"] != "Namespace")


def test_service_users_may_read_what_the_services_consume():
    """Each service's KafkaUser may read the topics its consumers subscribe to (from the services' own code)."""
    import importlib
    import inspect

    for service in manifests.SERVICE_NAMES:
        handlers = importlib.import_module(f"{service}.handlers")
        required = [p for p in inspect.signature(handlers.consumer_specs).parameters.values()
                    if p.default is inspect.Parameter.empty]
        specs = handlers.consumer_specs(*[None] * len(required))
        consumed = {topic for spec in specs for topic in spec.topics}
        user = manifests.service_user(service)
        readable = {a["resource"]["name"] for a in user["spec"]["authorization"]["acls"] if "Read" in a["operations"]}
        own_prefix = f"{service}."
        missing = {t for t in consumed if t not in readable and not t.startswith(own_prefix)}
        assert not missing, f"{service} consumes {sorted(missing)}: add them to PROFILES[{service!r}].consumes in tools/deploy/manifests.py"


# ---------------------------------------------------------------- the checks fail on broken manifests


def _problems(root: Path, overlay: str = "prod") -> list[str]:
    return validate.overlay_problems(root / "deploy" / "k8s" / "overlays" / overlay, root / "deploy" / "schemas")


def test_missing_kafka_topic_is_caught(scratch):
    topics = scratch / "deploy" / "k8s" / "base" / "kafka" / "topics.yaml"
    documents = [d for d in yaml.safe_load_all(topics.read_text()) if d["metadata"]["name"] != "intel.liaison.v1"]
    topics.write_text("---\n".join(yaml.safe_dump(d) for d in documents))
    assert "catalog topic intel.liaison.v1 has no KafkaTopic" in _problems(scratch)


def test_topic_partitions_drifting_from_the_catalog_are_caught(scratch):
    replace_in(scratch / "deploy" / "k8s" / "base" / "kafka" / "topics.yaml", "topicName: intel.tips.v1\n  partitions: 6",
               "topicName: intel.tips.v1\n  partitions: 12")
    assert any("KafkaTopic intel.tips.v1: partitions 12 != catalog 6" in p for p in _problems(scratch))


def test_misspelt_field_fails_schema_validation(scratch):
    replace_in(scratch / "deploy" / "k8s" / "base" / "services" / "intel.yaml", "readinessProbe:", "readynessProbe:")
    problems = _problems(scratch, "dev")
    assert any(p.startswith("apps/v1/Deployment intel:") and "readynessProbe" in p for p in problems)
    assert "intel: readiness probe must GET /readyz" in problems


def test_wrong_strimzi_value_fails_schema_validation(scratch):
    replace_in(scratch / "deploy" / "k8s" / "base" / "kafka" / "kafka.yaml", "type: loadbalancer", "type: load-balancer")
    assert any("kafka.strimzi.io/v1/Kafka shouwang: spec/kafka/listeners/1/type" in p for p in _problems(scratch))


def test_missing_limits_and_pdb_are_caught(scratch):
    path = scratch / "deploy" / "k8s" / "base" / "services" / "rewards.yaml"
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d["kind"] != "PodDisruptionBudget"]
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    del deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    path.write_text("---\n".join(yaml.safe_dump(d) for d in documents))
    problems = _problems(scratch)
    assert "rewards: container has no limits.cpu" in problems
    assert "rewards: no PodDisruptionBudget selects its pods" in problems


def test_root_container_is_caught(scratch):
    replace_in(scratch / "deploy" / "k8s" / "base" / "services" / "dispatch.yaml", "readOnlyRootFilesystem: true",
               "readOnlyRootFilesystem: false")
    assert "dispatch: root filesystem must be read-only" in _problems(scratch)


def test_police_user_with_extra_rights_is_caught(scratch):
    users = scratch / "deploy" / "k8s" / "base" / "kafka" / "users.yaml"
    before, police = users.read_text().split("  name: police-liaison\n", 1)  # reports reads the liaison topic too
    users.write_text(before + "  name: police-liaison\n" + police.replace(
        "name: intel.liaison.v1\n        patternType: literal", "name: intel.\n        patternType: prefix", 1))
    problems = _problems(scratch)
    assert any("police-liaison: grants more than allowed: ('topic', 'intel.', 'prefix', 'Read')" in p for p in problems)


def test_service_exposed_to_the_ingress_controller_is_caught(scratch):
    path = scratch / "deploy" / "k8s" / "base" / "services" / "registry.yaml"
    replace_in(path, "app.kubernetes.io/name: gateway", "app.kubernetes.io/name: ingress")
    assert any(p.startswith("registry: only the gateway may call it") for p in _problems(scratch))


def test_ingress_to_another_service_is_caught(scratch):
    replace_in(scratch / "deploy" / "k8s" / "base" / "ingress.yaml", "name: gateway\n                port", "name: intel\n                port")
    assert "Ingress gateway routes /api to intel, not the gateway" in _problems(scratch)


def test_broken_kustomization_fails_the_build(scratch):
    replace_in(scratch / "deploy" / "k8s" / "base" / "kustomization.yaml", "  - ingress.yaml", "  - ingres.yaml")
    with pytest.raises(RuntimeError, match="kustomize build .* failed"):
        _problems(scratch)


def test_kind_without_bundled_schema_is_reported():
    problems = validate.schema_problems([{"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w"}}], SCHEMAS)
    assert problems == [f"example.org/v1/Widget w: no bundled schema for example.org/v1/Widget in {SCHEMAS}"]


def _settings_class(service: str):
    import importlib

    from shouwang_shared.config import ServiceSettings

    module = importlib.import_module(f"{service}.config")
    return next(v for v in vars(module).values()
                if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings)


@pytest.mark.parametrize("overlay", validate.OVERLAYS)
def test_each_service_gets_the_settings_it_reads(built, overlay):
    """Every env name a pod receives is a settings field (no typos); every field it needs and service_env sets is there."""
    import make_secrets

    from shouwang_dev.stack.services import service_env

    objects = built[overlay]
    config_maps = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}
    from shouwang_shared.kafka import KafkaSecurity

    secrets = {s["metadata"]["name"]: s["stringData"] for s in make_secrets.kubernetes_secrets("ns", "db")}
    strimzi_users = [o for o in objects if o["kind"] == "KafkaUser" and o["spec"]["authentication"]["type"] == "scram-sha-512"]
    secrets |= {u["metadata"]["name"]: {"password": "made by Strimzi"} for u in strimzi_users}
    all_fields = {f.upper() for s in manifests.SERVICE_NAMES for f in _settings_class(s).model_fields}
    all_fields |= {f"KAFKA_{f}".upper() for f in KafkaSecurity.model_fields}
    for service in manifests.SERVICE_NAMES:
        deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == service)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        provided = {e["name"] for e in container.get("env", [])}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                provided |= set(config_maps[source["configMapRef"]["name"]])
            else:
                provided |= set(secrets[source["secretRef"]["name"]])
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                assert ref["key"] in secrets[ref["name"]], f"{service}: secret {ref['name']} has no key {ref['key']}"
        assert provided <= all_fields, f"{service}: unknown settings {sorted(provided - all_fields)}"
        fields = _settings_class(service).model_fields
        required = {name.upper() for name, f in fields.items() if f.is_required()}
        assert required <= provided, f"{service}: required settings missing {sorted(required - provided)}"
        expected = set(service_env(service, port=8000, database_url="", bootstrap_servers="", service_urls={
            other: "" for other in manifests.PROFILES[service].calls}, secrets=make_secrets.make_secrets()))
        assert expected <= provided, f"{service}: service_env sets {sorted(expected - provided)} which the pod lacks"


def test_graceful_shutdown_fits_in_the_grace_period(built):
    """preStop sleep + uvicorn's graceful timeout (from the Dockerfile) + margin for the runtime stop < the grace period."""
    import re

    for deployment in (o for o in built["prod"] if o["kind"] == "Deployment"):
        service = deployment["metadata"]["labels"]["app.kubernetes.io/name"]  # a worker deployed apart runs its service's image
        cmd = (REPO / "services" / service / "Dockerfile").read_text()
        graceful = int(re.search(r'"--timeout-graceful-shutdown", "(\d+)"', cmd).group(1))
        pod = deployment["spec"]["template"]["spec"]
        pre_stop = int(pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][-1])
        assert pre_stop + graceful + 15 <= pod["terminationGracePeriodSeconds"], service
