"""The Grafana dashboard and the Prometheus alert rules load, query real metrics, parse and pass promtool's unit tests."""

from __future__ import annotations

import json
import re

import validate
import yaml

from tests.deploy.conftest import REPO, replace_in

DASHBOARD = REPO / "deploy" / "observability" / "grafana" / "shouwang-overview.json"
ALERTS = REPO / "deploy" / "observability" / "prometheus" / "alerts.yml"
RUNBOOKS = REPO / "docs" / "runbooks"


def test_dashboard_queries_known_metrics_and_shows_every_view():
    assert validate.dashboard_problems(DASHBOARD) == []
    titles = [p["title"] for p in json.loads(DASHBOARD.read_text())["panels"]]
    assert "Dispatch fill rate by operation" in titles and "Tips per hour by category" in titles


def test_dashboard_promql_parses(tmp_path):
    assert validate.dashboard_query_problems(validate.dashboard_queries(DASHBOARD), tmp_path) == []


def test_dashboard_with_unknown_metric_or_bad_promql_is_caught(scratch, tmp_path):
    dashboard = scratch / "deploy" / "observability" / "grafana" / "shouwang-overview.json"
    replace_in(dashboard, "shouwang_outbox_backlog{", "shouwang_outbox_backlogg{")
    assert any("unknown metric shouwang_outbox_backlogg" in p for p in validate.dashboard_problems(dashboard))
    replace_in(dashboard, "sum by (service) (shouwang_outbox_backlogg{", "sum by (service (shouwang_outbox_backlogg{")
    problems = validate.dashboard_query_problems(validate.dashboard_queries(dashboard), tmp_path)
    assert problems and "promtool check rules" in problems[0]


def test_alert_rules_pass_promtool_check_and_unit_tests():
    assert validate.alert_problems(ALERTS, RUNBOOKS) == []


def test_alerts_cover_what_operations_asked_for():
    names = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    assert {"ShouwangConsumerLagGrowing", "ShouwangOutboxBacklog", "ShouwangDeadLetters", "ShouwangHttp5xxRate",
            "ShouwangFillRateBelowTarget"} <= names


def test_broken_alert_rule_is_caught_by_promtool(scratch):
    alerts = scratch / "deploy" / "observability" / "prometheus" / "alerts.yml"
    replace_in(alerts, "expr: max by (service) (shouwang_outbox_backlog) > 5000", "expr: max by (service) (shouwang_outbox_backlog > 5000")
    problems = validate.alert_problems(alerts, scratch / "docs" / "runbooks")
    assert any(p.startswith("promtool check rules") for p in problems)


def test_alert_that_stops_firing_fails_its_unit_test(scratch):
    alerts = scratch / "deploy" / "observability" / "prometheus" / "alerts.yml"
    replace_in(alerts, "> 0.02", "> 0.05")
    problems = validate.alert_problems(alerts, scratch / "docs" / "runbooks")
    assert any(p.startswith("promtool test rules") and "ShouwangHttp5xxRate" in p for p in problems)


def test_alert_without_runbook_is_caught(scratch):
    (scratch / "docs" / "runbooks" / "dead-letters.md").unlink()
    problems = validate.alert_problems(scratch / "deploy" / "observability" / "prometheus" / "alerts.yml", scratch / "docs" / "runbooks")
    assert problems == [f"ShouwangDeadLetters: runbook 'docs/runbooks/dead-letters.md' does not exist in {scratch / 'docs' / 'runbooks'}"]


def test_prometheus_rule_carries_the_same_groups_as_the_rule_file():
    rule = yaml.safe_load((REPO / "deploy" / "observability" / "prometheusrule.yaml").read_text())
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]


def test_compose_prometheus_config_is_valid():
    assert validate.promtool_problems("check", "config", "--syntax-only", str(REPO / "deploy" / "compose" / "prometheus" / "prometheus.yml")) == []


def test_alerts_query_only_metrics_the_services_register():
    known = validate.known_metrics()
    named = set(re.findall(r"\bshouwang_[a-z0-9_]+", ALERTS.read_text()))
    assert named and {m for m in named if validate._metric_base(m) not in known} == set()
    assert {"shouwang_dispatch_fill_ratio", "shouwang_dispatch_next_shift_start_timestamp_seconds"} <= named
