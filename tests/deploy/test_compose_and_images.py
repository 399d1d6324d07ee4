"""docker-compose.yml and the service Dockerfiles: parsed and checked against the service list and the lock file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, replace_in

import manifests
import validate
from shouwang_shared.stack.services import SERVICES


def test_compose_runs_kafka_postgres_the_services_and_monitoring():
    assert validate.compose_problems(REPO / "docker-compose.yml") == []
    document = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert set(document["services"]) == {s.name for s in SERVICES} | {"kafka", "postgres", "prometheus", "grafana"}
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
    replace_in(scratch / "deploy" / "compose" / "postgres" / "init-databases.sh", "create_database dispatch ", "# create_database dispatch ")
    replace_in(scratch / "deploy" / "compose" / "prometheus" / "prometheus.yml", "- gateway:8000", "- gatewy:8000")
    problems = validate.compose_problems(compose)
    assert any(p.startswith("intel: DATABASE_URL must name its own database") for p in problems)
    assert "postgres init script does not create the dispatch database" in problems
    assert "prometheus does not scrape gateway:8000" in problems


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


def test_the_image_install_command_works_from_the_lock_file(tmp_path):
    """What the Dockerfile's build stage runs, run here: the service installs alone and its app factory imports."""
    service = "rewards"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"), "UV_LINK_MODE": "copy"}
    env.pop("VIRTUAL_ENV", None)
    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` names its own binary in UV
    assert uv, "uv is not on PATH and UV is unset: run the tests with `uv run pytest`"
    subprocess.run([uv, "sync", "--frozen", "--no-dev", "--package", f"shouwang-{service}", "--no-editable", "--quiet"],
                   cwd=REPO, env=env, check=True, timeout=300)
    python = tmp_path / "venv" / "bin" / "python"
    probe = ("import importlib.util, pathlib, rewards.main as m; "
             "assert callable(m.create_app); assert m.MIGRATIONS.is_dir(); "
             "print(sorted(p.name for p in m.MIGRATIONS.iterdir() if p.suffix in ('.sql', '.py')));"
             "print(importlib.util.find_spec('pytest') is None, importlib.util.find_spec('dispatch') is None)")
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    migrations, isolation = result.stdout.strip().splitlines()
    assert migrations != "[]", "the migrations must ship inside the installed package"
    assert isolation == "True True", "no dev tools and no other service in the image"
    assert str(python) != sys.executable
