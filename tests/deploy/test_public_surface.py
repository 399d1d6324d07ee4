"""What the outside world can reach and read: the ingress routes only the public API and console; the dev overlay
logs at INFO; production names its own console origins."""

from __future__ import annotations

import pytest
import validate

from tests.deploy.conftest import replace_in

INTERNAL = ("/metrics", "/readyz", "/healthz", "/internal/v1/staff/verify-password", "/docs", "/openapi.json", "/")
PUBLIC = ("/api/v1/auth/login", "/api/v1/tips", "/console/", "/console/cases/1")


@pytest.mark.parametrize("overlay", validate.OVERLAYS)
def test_the_ingress_routes_the_public_api_and_console_only(built, overlay):
    [ingress] = [o for o in built[overlay] if o["kind"] == "Ingress"]
    assert [p for p in INTERNAL if validate.ingress_routes(ingress, p)] == [], "probes, metrics and internal calls stay inside the cluster"
    assert all(validate.ingress_routes(ingress, p) for p in PUBLIC)


def test_an_ingress_that_routes_everything_again_is_caught(scratch):
    replace_in(scratch / "deploy" / "k8s" / "base" / "ingress.yaml", "- path: /api", "- path: /")
    problems = validate.ingress_problems(validate.kustomize_build(scratch / "deploy" / "k8s" / "overlays" / "prod"))
    assert any("/metrics" in p and "/readyz" in p for p in problems), problems


@pytest.mark.parametrize("overlay", validate.OVERLAYS)
def test_no_overlay_logs_at_debug(built, overlay):
    """DEBUG logs carry request bodies and bound values; every overlay logs at INFO."""
    levels = {o["data"].get("LOG_LEVEL") for o in built[overlay] if o["kind"] == "ConfigMap" and "LOG_LEVEL" in o.get("data", {})}
    assert levels == {"INFO"}


def test_production_takes_no_development_console_origin(built):
    gateway = next(o for o in built["prod"] if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("gateway-config"))
    origins = gateway["data"].get("CONSOLE_ORIGINS")
    assert origins is not None, "prod sets CONSOLE_ORIGINS explicitly, so the settings default (a dev origin) never applies"
    assert all(o.startswith("https://") and "localhost" not in o and "127.0.0.1" not in o for o in filter(None, origins.split(",")))
