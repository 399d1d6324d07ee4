"""Offline checks of everything in deploy/: kustomize builds, bundled-schema validation, platform policies,
the compose file, the dashboard and the alert rules. Each check returns a list of problems (empty = fine).

`python tools/deploy/validate.py [--root DIR]` runs them all and exits 1 on any problem.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

sys.path.insert(0, str(Path(__file__).resolve().parent))

from manifests import (  # noqa: E402
    KAFKA_CLUSTER,
    POLICE_GROUP,
    POLICE_READS,
    POLICE_USER,
    POLICE_WRITES,
    PROFILES,
    SERVICE_NAMES,
    WORKERS,
    worker_name,
)

from shouwang_dev.stack.services import service_env  # noqa: E402
from shouwang_shared.topics import CATALOG  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "prod")
INSTALL_HINT = "run tools/deploy/install_tools.sh (the Makefile's install target does)"


class ToolMissing(RuntimeError):
    """An external program the checks need is not installed."""


def tool(name: str, root: Path = REPO) -> str:
    """Path of an external tool: .local/bin of the repository first, then PATH; raises ToolMissing."""
    for candidate in (REPO / ".local" / "bin" / name, root / ".local" / "bin" / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise ToolMissing(f"{name} is not installed: {INSTALL_HINT}")


# ---------------------------------------------------------------- kustomize


def kustomize_build(overlay: Path) -> list[dict[str, Any]]:
    """The objects `kustomize build` renders for an overlay; raises RuntimeError with kustomize's message."""
    result = subprocess.run([tool("kustomize"), "build", str(overlay)], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"kustomize build {overlay} failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


# ---------------------------------------------------------------- schemas


@lru_cache(maxsize=4)
def _schema_bundles(schemas_dir: str) -> dict[str, tuple[dict[str, Any], str]]:
    """{apiVersion/kind: (bundle document, definition name)} from deploy/schemas/*.json."""
    index: dict[str, tuple[dict[str, Any], str]] = {}
    for path in sorted(Path(schemas_dir).glob("*.json")):
        bundle = json.loads(path.read_text())
        for key, name in bundle["kinds"].items():
            index[key] = (bundle, name)
    return index


@lru_cache(maxsize=64)
def _validator(schemas_dir: str, key: str) -> Draft202012Validator:
    bundle, name = _schema_bundles(schemas_dir)[key]
    pointer = name.replace("~", "~0").replace("/", "~1")
    schema = {"$defs": bundle["$defs"], "$ref": f"#/$defs/{pointer}"}
    return Draft202012Validator(schema)


def schema_problems(objects: list[dict[str, Any]], schemas_dir: Path) -> list[str]:
    """Objects that a bundled schema rejects, or whose kind has no bundled schema."""
    problems = []
    index = _schema_bundles(str(schemas_dir))
    for obj in objects:
        key = f"{obj.get('apiVersion')}/{obj.get('kind')}"
        name = f"{key} {obj.get('metadata', {}).get('name', '?')}"
        if key not in index:
            problems.append(f"{name}: no bundled schema for {key} in {schemas_dir}")
            continue
        for error in sorted(_validator(str(schemas_dir), key).iter_errors(obj), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            problems.append(f"{name}: {where}: {error.message[:300]}")
    return problems


# ---------------------------------------------------------------- policies


def _by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o.get("kind") == kind}


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def service_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Each service: Deployment with probes, limits, non-root, read-only root, grace period; Service, SA, HPA, PDB, NetworkPolicy."""
    problems = []
    deployments = _by_kind(objects, "Deployment")
    for service in SERVICE_NAMES:
        deployment = deployments.get(service)
        if deployment is None:
            problems.append(f"{service}: no Deployment")
            continue
        pod = deployment["spec"]["template"]["spec"]
        pod_labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        containers = pod.get("containers", [])
        if not containers:
            problems.append(f"{service}: Deployment has no container")
            continue
        main = containers[0]
        if main.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
            problems.append(f"{service}: readiness probe must GET /readyz")
        if main.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            problems.append(f"{service}: liveness probe must GET /healthz")
        resources = main.get("resources", {})
        for part in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(part, {}):
                    problems.append(f"{service}: container has no {part}.{resource}")
        container_security = main.get("securityContext", {})
        if not (pod.get("securityContext", {}).get("runAsNonRoot") or container_security.get("runAsNonRoot")):
            problems.append(f"{service}: must run as non-root (runAsNonRoot)")
        if container_security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{service}: root filesystem must be read-only")
        if container_security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{service}: allowPrivilegeEscalation must be false")
        if pod.get("terminationGracePeriodSeconds", 30) < 30:
            problems.append(f"{service}: terminationGracePeriodSeconds below 30 cuts graceful shutdown short")
        if pod.get("serviceAccountName") != service or service not in _by_kind(objects, "ServiceAccount"):
            problems.append(f"{service}: must run under its own ServiceAccount")
        if service not in _by_kind(objects, "Service"):
            problems.append(f"{service}: no Service")
        if not any(o["spec"]["scaleTargetRef"].get("name") == service for o in _by_kind(objects, "HorizontalPodAutoscaler").values()):
            problems.append(f"{service}: no HorizontalPodAutoscaler")
        if not any(_matches(p["spec"].get("selector", {}).get("matchLabels", {}), pod_labels)
                   for p in _by_kind(objects, "PodDisruptionBudget").values()):
            problems.append(f"{service}: no PodDisruptionBudget selects its pods")
        policies = [p for p in _by_kind(objects, "NetworkPolicy").values()
                    if _matches(p["spec"].get("podSelector", {}).get("matchLabels", {}), pod_labels)
                    and p["spec"].get("podSelector", {}).get("matchLabels")]
        if not policies:
            problems.append(f"{service}: no NetworkPolicy selects its pods")
        elif not all(set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"} for p in policies):
            problems.append(f"{service}: its NetworkPolicy must restrict both Ingress and Egress")
        else:
            problems += _network_problems(service, policies)
    return problems + _worker_problems(objects)


def _worker_problems(objects: list[dict[str, Any]]) -> list[str]:
    """A worker deployed apart: its own Deployment turns it on, the API's ConfigMap off; same pod security, under a NetworkPolicy."""
    problems = []
    deployments, config_maps = _by_kind(objects, "Deployment"), _by_kind(objects, "ConfigMap")
    for service, (component, switch) in WORKERS.items():
        name = worker_name(service)
        worker, api = deployments.get(name), deployments.get(service)
        if worker is None or api is None:
            problems.append(f"{service}: no Deployment for its {component}")
            continue
        pod, container = worker["spec"]["template"]["spec"], worker["spec"]["template"]["spec"]["containers"][0]
        if {e["name"]: e.get("value") for e in container.get("env", [])}.get(switch) != "true":
            problems.append(f"{name}: must set {switch}=true")
        if config_maps.get(f"{service}-config", {}).get("data", {}).get(switch) != "false":
            problems.append(f"{service}: its API pods must run with {switch}=false")
        if container.get("securityContext") != api["spec"]["template"]["spec"]["containers"][0].get("securityContext"):
            problems.append(f"{name}: must run with the API container's security context")
        pod_labels = worker["spec"]["template"]["metadata"].get("labels", {})
        if not any(_matches(p["spec"].get("podSelector", {}).get("matchLabels", {}), pod_labels)
                   for p in _by_kind(objects, "NetworkPolicy").values()):
            problems.append(f"{name}: no NetworkPolicy selects its pods")
        if pod.get("serviceAccountName") != service:
            problems.append(f"{name}: must run under {service}'s ServiceAccount")
    return problems


def _network_problems(service: str, policies: list[dict[str, Any]]) -> list[str]:
    """Only the gateway admits the ingress controller; others admit only the gateway (and monitoring)."""
    problems = []
    peers = [peer for p in policies for rule in p["spec"].get("ingress", []) for peer in rule.get("from", [])]
    allowed_namespaces = {"monitoring"} | ({"ingress-nginx"} if service == "gateway" else set())
    for peer in peers:
        if "ipBlock" in peer:
            problems.append(f"{service}: ingress from an address block is not allowed")
        namespace = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
        if "namespaceSelector" in peer and namespace not in allowed_namespaces:
            problems.append(f"{service}: ingress from namespace {namespace or 'any'} is not allowed")
        pod = peer.get("podSelector", {}).get("matchLabels", {})
        if "podSelector" in peer and "namespaceSelector" not in peer and pod.get("app.kubernetes.io/name") != "gateway":
            problems.append(f"{service}: only the gateway may call it, not pods {pod or 'any'}")
    egress_peers = [peer for p in policies for rule in p["spec"].get("egress", []) for peer in rule.get("to", [])]
    for peer in egress_peers:
        name = peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
        if name in SERVICE_NAMES and name not in PROFILES[service].calls:
            problems.append(f"{service}: egress to {name} which it does not call")
    if any(not rule.get("to") for p in policies for rule in p["spec"].get("egress", [])):
        problems.append(f"{service}: an egress rule without peers allows every destination")
    return problems


def kafka_problems(objects: list[dict[str, Any]]) -> list[str]:
    """A KRaft Kafka with a node pool; a KafkaTopic matching every catalog topic; the police user's exact ACLs."""
    problems = []
    kafkas = _by_kind(objects, "Kafka")
    if KAFKA_CLUSTER not in kafkas:
        problems.append(f"no Kafka named {KAFKA_CLUSTER}")
    pools = [p for p in _by_kind(objects, "KafkaNodePool").values() if p["metadata"].get("labels", {}).get("strimzi.io/cluster") == KAFKA_CLUSTER]
    roles = {r for p in pools for r in p["spec"].get("roles", [])}
    if roles != {"controller", "broker"}:
        problems.append(f"the node pools of {KAFKA_CLUSTER} must provide KRaft controllers and brokers, found {sorted(roles)}")
    topics = {t["spec"].get("topicName", t["metadata"]["name"]): t for t in _by_kind(objects, "KafkaTopic").values()}
    for spec in CATALOG:
        topic = topics.get(spec.name)
        if topic is None:
            problems.append(f"catalog topic {spec.name} has no KafkaTopic")
            continue
        if topic["metadata"].get("labels", {}).get("strimzi.io/cluster") != KAFKA_CLUSTER:
            problems.append(f"KafkaTopic {spec.name} is not labelled for cluster {KAFKA_CLUSTER}")
        if topic["spec"].get("partitions") != spec.partitions:
            problems.append(f"KafkaTopic {spec.name}: partitions {topic['spec'].get('partitions')} != catalog {spec.partitions}")
        if {k: str(v) for k, v in topic["spec"].get("config", {}).items()} != spec.kafka_config():
            problems.append(f"KafkaTopic {spec.name}: config differs from the catalog {spec.kafka_config()}")
    for name in set(topics) - {s.name for s in CATALOG}:
        problems.append(f"KafkaTopic {name} is not in the catalog")
    users = _by_kind(objects, "KafkaUser")
    for service in SERVICE_NAMES:
        if service not in users:
            problems.append(f"{service}: no KafkaUser")
    police = users.get(POLICE_USER)
    if police is None:
        problems.append(f"no KafkaUser {POLICE_USER}")
    else:
        problems += police_acl_problems(police)
    return problems


def police_acl_problems(user: dict[str, Any]) -> list[str]:
    """The police user may read the liaison feed (with its own group) and write dispositions — nothing else."""
    expected = {("topic", t, "literal", op) for t in POLICE_READS for op in ("Read", "Describe")}
    expected |= {("topic", t, "literal", op) for t in POLICE_WRITES for op in ("Write", "Describe")}
    expected |= {("group", POLICE_GROUP, "literal", "Read")}
    granted = set()
    for rule in user["spec"].get("authorization", {}).get("acls", []):
        resource = rule["resource"]
        if rule.get("type", "allow") != "allow":
            continue
        for op in rule.get("operations", []):
            granted.add((resource["type"], resource.get("name"), resource.get("patternType", "literal"), op))
    problems = [f"{POLICE_USER}: grants more than allowed: {g}" for g in sorted(granted - expected, key=str)]
    problems += [f"{POLICE_USER}: lacks {m}" for m in sorted(expected - granted, key=str)]
    if user["spec"].get("authentication", {}).get("type") not in ("tls", "scram-sha-512"):
        problems.append(f"{POLICE_USER}: must authenticate (tls or scram-sha-512)")
    return problems


# Paths of every service that only the cluster may reach: probes, metrics, service-to-service calls, API docs.
INTERNAL_PATHS = ("/metrics", "/readyz", "/healthz", "/internal/v1/", "/docs", "/openapi.json")


def ingress_routes(ingress: dict[str, Any], path: str) -> bool:
    """Whether a request for `path` reaches a backend through `ingress` (Kubernetes Exact and Prefix matching)."""
    for rule in ingress["spec"].get("rules", []):
        for route in rule.get("http", {}).get("paths", []):
            declared = route.get("path", "/")
            if route.get("pathType") == "Exact":
                if path == declared:
                    return True
            elif declared.rstrip("/") == "" or path == declared.rstrip("/") or path.startswith(declared.rstrip("/") + "/"):
                return True
    return False


def ingress_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Ingresses route to the gateway only, and only its public paths (never probes, metrics or internal calls)."""
    problems = []
    ingresses = _by_kind(objects, "Ingress")
    if not ingresses:
        problems.append("no Ingress for the gateway")
    for name, ingress in ingresses.items():
        for rule in ingress["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                backend = path["backend"].get("service", {}).get("name")
                if backend != "gateway":
                    problems.append(f"Ingress {name} routes {path.get('path')} to {backend}, not the gateway")
        exposed = [p for p in INTERNAL_PATHS if ingress_routes(ingress, p)]
        if exposed:
            problems.append(f"Ingress {name} exposes {', '.join(exposed)}: route only the public API and console")
    return problems


def secret_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Each service's pods take named keys of their own Secrets only: never a whole Secret, never another's keys."""
    problems = []
    for deployment in _by_kind(objects, "Deployment").values():
        service = deployment["metadata"].get("labels", {}).get("app.kubernetes.io/name")
        if service not in SERVICE_NAMES:
            continue
        own = {f"{service}-keys", f"{service}-database", service} | ({"gateway-signing"} if service == "gateway" else set())
        for container in deployment["spec"]["template"]["spec"].get("containers", []):
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    problems.append(f"{deployment['metadata']['name']}: mounts Secret {source['secretRef']['name']} whole; name each key")
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] not in own and (ref["name"], ref["key"]) != ("shouwang-platform", "JWT_PUBLIC_KEYS"):
                    problems.append(f"{deployment['metadata']['name']}: takes {ref['key']} of Secret {ref['name']}, not its own")
    return problems


def monitoring_problems(objects: list[dict[str, Any]]) -> list[str]:
    """A ServiceMonitor selecting the services' http port; the PrometheusRule present."""
    problems = []
    monitors = _by_kind(objects, "ServiceMonitor")
    services = _by_kind(objects, "Service")
    for name in SERVICE_NAMES:
        labels = services.get(name, {}).get("metadata", {}).get("labels", {})
        if not any(_matches(m["spec"]["selector"].get("matchLabels", {}), labels)
                   and any(e.get("port") == "http" and e.get("path", "/metrics") == "/metrics" for e in m["spec"]["endpoints"])
                   for m in monitors.values()):
            problems.append(f"{name}: no ServiceMonitor scrapes its http port at /metrics")
    if not _by_kind(objects, "PrometheusRule"):
        problems.append("no PrometheusRule with the alert rules")
    return problems


def overlay_problems(overlay: Path, schemas_dir: Path) -> list[str]:
    """Every check of one overlay's rendered output."""
    objects = kustomize_build(overlay)
    return (schema_problems(objects, schemas_dir) + service_problems(objects) + kafka_problems(objects)
            + ingress_problems(objects) + secret_problems(objects) + monitoring_problems(objects))


# ---------------------------------------------------------------- compose


def compose_problems(compose_file: Path) -> list[str]:
    """The compose file: Kafka in KRaft, PostgreSQL with every service's database, the five services, Prometheus, Grafana."""
    root = compose_file.parent
    document = yaml.safe_load(compose_file.read_text())
    services = document.get("services", {})
    problems = []
    expected = set(SERVICE_NAMES) | set(map(worker_name, WORKERS)) | {"kafka", "postgres", "prometheus", "grafana"}
    if set(services) != expected:
        problems.append(f"compose services {sorted(services)} != expected {sorted(expected)}")
    kafka = services.get("kafka", {})
    if not str(kafka.get("image", "")).startswith("apache/kafka:"):
        problems.append("kafka must use the official apache/kafka image")
    if "controller" not in str(kafka.get("environment", {}).get("KAFKA_PROCESS_ROLES", "")):
        problems.append("kafka must run in KRaft mode (KAFKA_PROCESS_ROLES with controller)")
    log_dirs = str(kafka.get("environment", {}).get("KAFKA_LOG_DIRS", ""))
    if not any(str(v).endswith(":" + log_dirs) for v in kafka.get("volumes", [])) or not log_dirs:
        problems.append("kafka must keep its log (KAFKA_LOG_DIRS) on a volume")
    init_scripts = [v.split(":")[0] for v in services.get("postgres", {}).get("volumes", []) if "docker-entrypoint-initdb.d" in v]
    init_text = "".join((root / s).read_text() for s in init_scripts if (root / s).exists())
    required_env = set(service_env("x", port=0, database_url="", bootstrap_servers="", secrets={
        "jwt_kid": "", "jwt_public_pem": ""}, service_urls={}))
    for name in SERVICE_NAMES:
        if not re.search(rf"^create_database {name} ", init_text, re.M):
            problems.append(f"postgres init script does not create the {name} database")
        service = services.get(name)
        if service is None:
            continue
        dockerfile = service.get("build", {}).get("dockerfile")
        if dockerfile != f"services/{name}/Dockerfile" or not (root / dockerfile).exists():
            problems.append(f"{name}: must build from services/{name}/Dockerfile at the repository root")
        environment = set(service.get("environment", {}))
        env_files = service.get("env_file", [])
        secret_keys = {"JWT_PUBLIC_KEYS"} if env_files else set()
        missing = required_env - environment - secret_keys
        if missing:
            problems.append(f"{name}: environment lacks {sorted(missing)}")
        database_url = service.get("environment", {}).get("DATABASE_URL", "")
        if not database_url.endswith(f"/{name}"):
            problems.append(f"{name}: DATABASE_URL must name its own database, got {database_url}")
        depends = service.get("depends_on", {})
        for dependency in ("kafka", "postgres"):
            if not isinstance(depends, dict) or depends.get(dependency, {}).get("condition") != "service_healthy":
                problems.append(f"{name}: must wait for {dependency} to be healthy")
    prometheus_config = root / "deploy" / "compose" / "prometheus" / "prometheus.yml"
    targets = {t for job in yaml.safe_load(prometheus_config.read_text()).get("scrape_configs", [])
               for group in job.get("static_configs", []) for t in group.get("targets", [])}
    for name in SERVICE_NAMES:
        if f"{name}:8000" not in targets:
            problems.append(f"prometheus does not scrape {name}:8000")
    return problems


# ---------------------------------------------------------------- Dockerfiles


def dockerfile_problems(dockerfile: Path, service: str) -> list[str]:
    """Multi-stage, uv sync of this package from the lock file, non-root, no build tools at run time, healthcheck, uvicorn CMD."""
    text = dockerfile.read_text()
    problems = []
    stages = re.split(r"^FROM\s", text, flags=re.M)[1:]
    if len(stages) < 2:
        problems.append(f"{service}: not multi-stage")
        return problems
    final = stages[-1]
    if f"uv sync --frozen --no-dev --package shouwang-{service}" not in text:
        problems.append(f"{service}: must install with uv sync --frozen --no-dev --package shouwang-{service}")
    user = re.findall(r"^USER\s+(\S+)", final, re.M)
    if not user or user[-1].split(":")[0] in ("root", "0"):
        problems.append(f"{service}: the final stage must switch to a non-root USER")
    if re.search(r"\b(uv|gcc|build-essential|make|pip install)\b", "\n".join(
            line for line in final.splitlines() if line.startswith(("RUN", "COPY")) and "/app/.venv" not in line)):
        problems.append(f"{service}: the final stage must not install build tools")
    if "HEALTHCHECK" not in final or "/healthz" not in final:
        problems.append(f"{service}: no HEALTHCHECK on /healthz")
    cmd = re.findall(r"^CMD\s+(.+)$", final, re.M)
    if not cmd:
        problems.append(f"{service}: no CMD")
    else:
        args = json.loads(cmd[-1])
        if args[:3] != ["uvicorn", "--factory", f"{service}.main:create_app"] or "0.0.0.0" not in args or "8000" not in args:
            problems.append(f"{service}: CMD must be uvicorn --factory {service}.main:create_app on 0.0.0.0:8000")
    return problems


# ---------------------------------------------------------------- observability


def _metric_base(name: str) -> str:
    """A metric name without the suffixes a histogram or counter adds."""
    for suffix in ("_bucket", "_count", "_sum", "_total"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def known_metrics() -> set[str]:
    """Base names of the metric families the shared library and the services really register (their apps imported)."""
    import importlib

    from prometheus_client import REGISTRY

    for name in SERVICE_NAMES:
        importlib.import_module(f"{name}.main")
    names = {metric.name for metric in REGISTRY.collect()}
    return {_metric_base(n) for n in names}


def dashboard_queries(dashboard_file: Path) -> list[str]:
    """Every PromQL expression of the dashboard's panels."""
    document = json.loads(dashboard_file.read_text())
    return [t.get("expr", "") for panel in document.get("panels", []) for t in panel.get("targets", [])]


def dashboard_problems(dashboard_file: Path) -> list[str]:
    """The dashboard loads, every panel queries metrics that exist, and the required views are there."""
    try:
        document = json.loads(dashboard_file.read_text())
    except json.JSONDecodeError as exc:
        return [f"{dashboard_file.name}: not JSON: {exc}"]
    problems = []
    known = known_metrics()
    for panel in document.get("panels", []):
        if not panel.get("targets"):
            problems.append(f"panel {panel.get('title')!r} has no query")
        for target in panel.get("targets", []):
            for metric in re.findall(r"\bshouwang_[a-z0-9_]+", target.get("expr", "")):
                if _metric_base(metric) not in known:
                    problems.append(f"panel {panel.get('title')!r} queries unknown metric {metric}")
    joined = "\n".join(dashboard_queries(dashboard_file))
    for needed in ("shouwang_http_request_seconds_count", "shouwang_http_request_seconds_bucket", "shouwang_consumer_lag",
                   "shouwang_outbox_backlog", "shouwang_dead_letters_total", "shouwang_dispatch_fill_ratio",
                   "shouwang_intel_tips_accepted_total"):
        if needed not in joined:
            problems.append(f"the dashboard shows nothing of {needed}")
    if "histogram_quantile(0.99" not in joined:
        problems.append("the dashboard shows no p99 latency")
    return problems


def promtool_problems(*args: str, cwd: Path | None = None) -> list[str]:
    """Run promtool with `args`; its complaints as problems."""
    result = subprocess.run([tool("promtool"), *args], capture_output=True, text=True, timeout=60, cwd=cwd)
    if result.returncode != 0:
        return [f"promtool {' '.join(args)}: {(result.stdout + result.stderr).strip()[:2000]}"]
    return []


def alert_problems(alerts_file: Path, runbooks_dir: Path) -> list[str]:
    """promtool checks and unit-tests the rules; every alert has a severity, a summary and an existing runbook."""
    problems = promtool_problems("check", "rules", str(alerts_file))
    tests = alerts_file.with_name("alerts_test.yml")
    problems += promtool_problems("test", "rules", str(tests))
    groups = yaml.safe_load(alerts_file.read_text()).get("groups", [])
    alerts = [rule for group in groups for rule in group.get("rules", []) if "alert" in rule]
    tested = set(re.findall(r"alertname:\s*(\S+)", tests.read_text())) if tests.exists() else set()
    for rule in alerts:
        name = rule["alert"]
        if rule.get("labels", {}).get("severity") not in ("warning", "critical"):
            problems.append(f"{name}: severity label must be warning or critical")
        if not rule.get("annotations", {}).get("summary"):
            problems.append(f"{name}: no summary annotation")
        runbook = rule.get("annotations", {}).get("runbook_url", "")
        if not runbook.startswith("docs/runbooks/") or not (runbooks_dir / Path(runbook).name).exists():
            problems.append(f"{name}: runbook {runbook!r} does not exist in {runbooks_dir}")
        if name not in tested:
            problems.append(f"{name}: no promtool unit test in {tests.name}")
    return problems


def dashboard_query_problems(exprs: list[str], workdir: Path) -> list[str]:
    """The dashboard's PromQL parses: promtool checks it as recording rules (Grafana variables substituted)."""
    rules = [{"record": f"dashboard:query_{i}", "expr": e.replace("$__rate_interval", "5m").replace("$__range", "1h")
              .replace("$service", ".*")} for i, e in enumerate(exprs)]
    path = workdir / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return promtool_problems("check", "rules", str(path))


# ---------------------------------------------------------------- all


def all_problems(root: Path = REPO, workdir: Path | None = None) -> list[str]:
    """Every check over a checkout rooted at `root`."""
    import tempfile

    problems: list[str] = []
    schemas = root / "deploy" / "schemas"
    for overlay in OVERLAYS:
        problems += [f"[{overlay}] {p}" for p in overlay_problems(root / "deploy" / "k8s" / "overlays" / overlay, schemas)]
    problems += compose_problems(root / "docker-compose.yml")
    for service in SERVICE_NAMES:
        problems += dockerfile_problems(root / "services" / service / "Dockerfile", service)
    dashboard = root / "deploy" / "observability" / "grafana" / "shouwang-overview.json"
    problems += dashboard_problems(dashboard)
    with tempfile.TemporaryDirectory() as tmp:
        problems += dashboard_query_problems(dashboard_queries(dashboard), Path(workdir or tmp))
    problems += alert_problems(root / "deploy" / "observability" / "prometheus" / "alerts.yml", root / "docs" / "runbooks")
    problems += promtool_problems("check", "config", "--syntax-only", str(root / "deploy" / "compose" / "prometheus" / "prometheus.yml"))
    return problems


def main() -> int:
    """Run every check and print the problems."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO)
    args = parser.parse_args()
    problems = all_problems(args.root)
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
