"""The Grafana dashboard and the Prometheus rules stay in step with what the processes export.

Every PromQL expression (alert rules, dashboard panels) must parse and select only metrics
the worker or the sink registers; the dashboard's datasources must be the provisioned ones;
Prometheus must load the rule file and scrape the ports the processes serve. The ClickHouse
panels run against a real ledger in tests/integration/test_dashboards.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.observability import (
    CLICKHOUSE_PLUGIN,
    PROMETHEUS,
    PROMETHEUS_OWN,
    PROVISIONING,
    alert_rules,
    dashboards,
    exported_metrics,
    promql_metrics,
    targets,
)


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return exported_metrics()


def test_the_metrics_the_issue_asks_for_are_exported(exported: set[str]) -> None:
    assert {
        "metering_consumer_lag_records",  # consumer lag (worker)
        "metering_sink_lag_records",  # sink lag
        "metering_sink_delay_seconds_bucket",
        "metering_dlq_total",  # DLQ rate
        "metering_sink_retries_total",  # sink failures
        "metering_reset_overdue_seconds",  # stalled restores
        "metering_restore_delay_seconds_bucket",
        "metering_quota_events_total",  # exhaustions and restores
        "metering_leakage_requests_total",
    } <= exported


def test_every_alert_expression_parses_and_uses_exported_metrics(exported: set[str]) -> None:
    rules = alert_rules()
    assert len(rules) >= 8
    for rule in rules:
        used = promql_metrics(rule["expr"])
        assert used, rule["alert"]
        assert used <= exported | PROMETHEUS_OWN, (rule["alert"], used - exported)


@pytest.mark.parametrize(
    ("topic", "alert"),
    [
        ("lag", "MeteringConsumerLagHigh"),
        ("sink lag", "MeteringSinkLagHigh"),
        ("DLQ spikes", "MeteringDLQSpike"),
        ("sink failures", "MeteringSinkFailing"),
        ("stalled restores", "MeteringRestoresStalled"),
    ],
)
def test_the_alerts_the_issue_asks_for_exist(topic: str, alert: str) -> None:
    assert alert in {rule["alert"] for rule in alert_rules()}, topic


def test_every_alert_has_a_severity_and_a_summary() -> None:
    for rule in alert_rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]


def test_every_prometheus_panel_parses_and_uses_exported_metrics(exported: set[str]) -> None:
    for name, dashboard in dashboards().items():
        queries = [t for t in targets(dashboard) if t.kind == "prometheus"]
        assert queries, name
        for target in queries:
            used = promql_metrics(target.text)
            assert used <= exported | PROMETHEUS_OWN, (target.panel, used - exported)


def provisioned_datasources() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in (PROVISIONING / "datasources").glob("*.yml"):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            found[source["uid"]] = source
    return found


def test_the_dashboard_reads_the_provisioned_datasources_through_its_variables() -> None:
    # given the provisioned datasources and the dashboard's datasource variables
    provisioned = provisioned_datasources()
    for name, dashboard in dashboards().items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        # then every panel query names its datasource by a variable of the right plugin
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                source = target["datasource"]
                variable = variables[source["uid"].strip("${}")]
                assert (variable["type"], variable["query"]) == ("datasource", source["type"])
        # and each variable's default is a provisioned datasource of that plugin
        for variable in variables.values():
            if variable["type"] == "datasource":
                default = provisioned[variable["current"]["value"]]
                assert default["type"] == variable["query"], name
    assert {s["type"] for s in provisioned.values()} == {"prometheus", CLICKHOUSE_PLUGIN}


def test_the_dashboard_covers_what_the_issue_asks_for() -> None:
    for dashboard in dashboards().values():
        text = " ".join(t.text for t in targets(dashboard))
        titles = " ".join(p["title"].lower() for p in dashboard["panels"])
        for needed in ("plan", "model", "leakage", "exhaustions", "restores", "dead letters"):
            assert needed in titles, needed
        for metric in (
            "metering_consumer_lag_records",
            "metering_sink_lag_records",
            "metering_dlq_total",
        ):
            assert metric in text, metric


def test_prometheus_loads_the_rules_and_scrapes_what_the_processes_serve() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"metering-worker", "metering-sink"}
    assert jobs["metering-worker"]["static_configs"][0]["targets"] == ["worker:6066"]
    assert jobs["metering-sink"]["static_configs"][0]["targets"] == ["sink:9464"]
    # the alert rules select these jobs by name
    jobs_in_rules = {
        job
        for rule in alert_rules()
        for job in ("metering-worker", "metering-sink")
        if job in rule["expr"]
    }
    assert jobs_in_rules == set(jobs)
