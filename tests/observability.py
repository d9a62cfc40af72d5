"""What the dashboard and the alert rules ask of the pipeline, read from their files.

Shared by the unit checks (every expression parses and names only exported metrics) and the
integration check (every ClickHouse panel runs against a ledger the sink wrote). Grafana's
macros are expanded here the way grafana-clickhouse-datasource expands them
(``pkg/macros/macros.go``: ``$__timeFilter(c)`` → ``c >= toDateTime(from) AND c <=
toDateTime(to)``…), so the SQL that runs is the SQL Grafana would send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import promql_parser
import yaml
from prometheus_client import CollectorRegistry

from metering.settings import REPO_ROOT
from metering.sink.metrics import SinkMetrics
from streams.metrics import WorkerMetrics

DASHBOARDS = REPO_ROOT / "deploy" / "grafana" / "dashboards"
PROVISIONING = REPO_ROOT / "deploy" / "grafana" / "provisioning"
PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
CLICKHOUSE_PLUGIN = "grafana-clickhouse-datasource"

PROMETHEUS_OWN = {"up"}
"""Series Prometheus writes itself for every target (not exported by the processes)."""

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


@dataclass(frozen=True)
class Target:
    """One query of one panel."""

    panel: str
    kind: str  # "clickhouse" | "prometheus"
    text: str  # rawSql or expr


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def targets(dashboard: dict[str, Any]) -> Iterator[Target]:
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        for target in panel["targets"]:
            plugin = target["datasource"]["type"]
            if plugin == CLICKHOUSE_PLUGIN:
                yield Target(panel["title"], "clickhouse", target["rawSql"])
            else:
                yield Target(panel["title"], plugin, target["expr"])


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def exported_metrics() -> set[str]:
    """Every sample name the worker and the sink can expose, read from their registries
    (families with labels but no sample yet included: their type says which names)."""
    worker = WorkerMetrics()
    worker.watch(lag=dict, next_deadline=lambda: None)
    names: set[str] = set()
    for registry in (worker.registry, SinkMetrics().registry):
        names |= _sample_names(registry)
    return names


def _sample_names(registry: CollectorRegistry) -> set[str]:
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in _SUFFIXES.get(family.type, ("",))
    }


_GRAFANA_PROMQL = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def promql_metrics(expr: str) -> set[str]:
    """The metric names an expression selects (parsing it: a syntax error raises)."""
    for variable, value in _GRAFANA_PROMQL.items():
        expr = expr.replace(variable, value)
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def expand_clickhouse(sql: str, database: str, start: datetime, end: datetime) -> str:
    """``sql`` as grafana-clickhouse-datasource sends it for ``[start, end]`` (1 h interval)."""
    first, last = int(start.timestamp()), int(end.timestamp())
    macros = {
        "timeFilter": lambda c: f"{c} >= toDateTime({first}) AND {c} <= toDateTime({last})",
        "dateFilter": lambda c: (
            f"{c} >= toDate('{start:%Y-%m-%d}') AND {c} <= toDate('{end:%Y-%m-%d}')"
        ),
        "timeInterval": lambda c: f"toStartOfInterval(toDateTime({c}), INTERVAL 3600 second)",
    }
    expanded = re.sub(
        r"\$__(\w+)\(([^()]*)\)",
        lambda m: macros[m[1]](m[2].strip()),
        sql.replace("${database}", database),
    )
    if "$" in expanded:
        raise AssertionError(f"a Grafana variable or macro the test does not expand: {expanded}")
    return expanded
