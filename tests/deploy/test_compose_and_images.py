"""docker-compose.yml and the service Dockerfiles: parsed and checked against the service list and the lock file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import manifests
import pytest
import validate
import yaml

from shouwang_dev.stack.services import SERVICES

from tests.deploy.conftest import REPO, replace_in


def test_compose_runs_kafka_postgres_the_services_and_monitoring():
    assert validate.compose_problems(REPO / "docker-compose.yml") == []
    document = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    workers = {f"{s}-{c}" for s, (c, _) in manifests.WORKERS.items()}
    assert set(document["services"]) == {s.name for s in SERVICES} | workers | {"kafka", "postgres", "prometheus", "grafana"}
    assert document["services"]["intel"]["environment"]["RUN_CLUSTERING"] == "false"
    assert document["services"]["intel-clustering-worker"]["environment"]["RUN_CLUSTERING"] == "true"
    assert document["services"]["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_compose_missing_service_is_caught(scratch):
    compose = scratch / "docker-compose.yml"
    document = yaml.safe_load(compose.read_text())
    del document["services"]["rewards"]
    compose.write_text(yaml.safe_dump(document))
    problems = validate.compose_problems(compose)
    assert any(p.startswith("compose services") for p in problems)
    assert "prometheus does not scrape rewards:8000" not in problems  # scrape config is a separate file, still intact


def test_compose_wrong_database_and_missing_init_are_caught(scratch):
    compose = scratch / "docker-compose.yml"
    replace_in(compose, "@postgres:5432/intel", "@postgres:5432/postgres")
    replace_in(compose, "KAFKA_LOG_DIRS: /var/lib/kafka/data", "KAFKA_LOG_DIRS: /tmp/kraft-combined-logs")
    replace_in(scratch / "deploy" / "compose" / "postgres" / "init-databases.sh", "create_database dispatch ", "# create_database dispatch ")
    replace_in(scratch / "deploy" / "compose" / "prometheus" / "prometheus.yml", "- gateway:8000", "- gatewy:8000")
    problems = validate.compose_problems(compose)
    assert any(p.startswith("intel: DATABASE_URL must name its own database") for p in problems)
    assert "postgres init script does not create the dispatch database" in problems
    assert "prometheus does not scrape gateway:8000" in problems
    assert "kafka must keep its log (KAFKA_LOG_DIRS) on a volume" in problems


@pytest.mark.parametrize("service", manifests.SERVICE_NAMES)
def test_dockerfile_is_multistage_nonroot_with_healthcheck(service):
    assert validate.dockerfile_problems(REPO / "services" / service / "Dockerfile", service) == []


def test_broken_dockerfiles_are_caught(scratch):
    path = scratch / "services" / "intel" / "Dockerfile"
    replace_in(path, "USER 10001:10001", "USER root")
    replace_in(path, '"intel.main:create_app"', '"intel.app:app"')
    problems = validate.dockerfile_problems(path, "intel")
    assert "intel: the final stage must switch to a non-root USER" in problems
    assert "intel: CMD must be uvicorn --factory intel.main:create_app on 0.0.0.0:8000" in problems
    single = scratch / "services" / "gateway" / "Dockerfile"
    single.write_text("FROM python:3.11-slim\nRUN pip install uv && uv sync --frozen --no-dev --package shouwang-gateway\n")
    assert validate.dockerfile_problems(single, "gateway") == ["gateway: not multi-stage"]


def _build_stage(dockerfile: str) -> list[tuple[str, str]]:
    """The instructions of the Dockerfile's `build` stage as (instruction, arguments), continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    stage, steps = None, []
    for line in joined.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, arguments = line.strip().partition(" ")
        if instruction == "FROM":
            stage = arguments.split(" AS ")[-1].strip() if " AS " in arguments else None
        elif stage == "build":
            steps.append((instruction, arguments.strip()))
    return steps


def test_the_image_build_stage_installs_the_service_alone(tmp_path):
    """The Dockerfile's build stage, replayed here without Docker: same files copied, same uv commands, same lock."""
    service = "rewards"
    steps = _build_stage((REPO / "services" / service / "Dockerfile").read_text())
    roots = {"/src": tmp_path / "src", "/app": tmp_path / "app"}

    def local(path: str) -> str:
        for image_path, here in roots.items():
            if path == image_path or path.startswith(image_path + "/"):
                return str(here) + path[len(image_path):]
        return path

    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` names its own binary in UV
    assert uv, "uv is not on PATH and UV is unset: run the tests with `uv run pytest`"
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    workdir = tmp_path
    ran = []
    for instruction, arguments in steps:
        if instruction == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", arguments):
                env[key] = local(value)
            env["UV_PYTHON"] = sys.executable  # the image's /usr/local/bin/python3 is this machine's Python 3.11
            env.update(UV_COMPILE_BYTECODE="0", UV_LINK_MODE="hardlink")  # speed only: not what is under test
        elif instruction == "WORKDIR":
            workdir = Path(local(arguments))
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY" and not arguments.startswith("--from"):
            *sources, destination = arguments.split()
            for source in sources:
                target = workdir / destination
                if (REPO / source).is_dir():
                    shutil.copytree(REPO / source, target, dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("__pycache__", ".venv", "*.pyc"))
                else:
                    target = target / Path(source).name if destination.endswith("/") else target
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(REPO / source, target)
        elif instruction == "RUN":
            command = re.sub(r"--mount=\S+\s*", "", arguments).replace("uv sync", f"{uv} sync", 1)
            subprocess.run(["bash", "-euc", command], cwd=workdir, env=env, check=True, timeout=300)
            ran.append(arguments)
    assert sum("uv sync --frozen --no-dev --package shouwang-rewards" in r for r in ran) == 2
    python = tmp_path / "app" / ".venv" / "bin" / "python"
    probe = ("import importlib.util, rewards.main as m; "
             "assert callable(m.create_app); assert m.MIGRATIONS.is_dir(); "
             "print(sorted(p.name for p in m.MIGRATIONS.iterdir() if p.suffix in ('.sql', '.py')));"
             "print(importlib.util.find_spec('pytest') is None, importlib.util.find_spec('dispatch') is None,"
             " importlib.util.find_spec('uvicorn') is not None)")
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    migrations, isolation = result.stdout.strip().splitlines()
    assert migrations != "[]", "the migrations must ship inside the installed package"
    assert isolation == "True True True", "uvicorn present; no dev tools and no other service in the image"
    assert "site-packages" in subprocess.run([str(python), "-c", "import rewards; print(rewards.__file__)"],
                                             capture_output=True, text=True, check=True).stdout, "installed, not editable"
