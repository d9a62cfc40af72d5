"""Every ClickHouse panel of the Grafana dashboard, run on a ledger the sink wrote.

The billed scenario goes through Kafka and the sink into ClickHouse (as for the analyst
queries); each panel's SQL, with Grafana's macros expanded as the ClickHouse plugin expands
them, must run and show rows, and the panels that total money or leakage must agree with the
billing core's own entries. (The same panels run on the cluster form's Distributed tables in
test_cluster_schema.py.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from tests.integration.ledger_pipeline import LEAK, billed_ledger, sink_filled_database, total
from tests.observability import dashboards, expand_clickhouse, targets

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
async def db(kafka_bootstrap: str, clickhouse_client: Client) -> AsyncIterator[str]:
    async with sink_filled_database(kafka_bootstrap, clickhouse_client, "dashboards") as name:
        yield name


@pytest.fixture(scope="module")
def panels(clickhouse_client: Client, db: str) -> dict[str, list[dict[str, Any]]]:
    """Each ClickHouse panel's rows over the scenario's months, by panel title."""
    found = {}
    for dashboard in dashboards().values():
        for target in targets(dashboard):
            if target.kind == "clickhouse":
                result = clickhouse_client.query(expand_clickhouse(target.text, db, START, END))
                found[target.panel] = [
                    dict(zip(result.column_names, row, strict=True)) for row in result.result_rows
                ]
    return found


def test_every_clickhouse_panel_shows_the_scenario(panels: dict[str, list[dict[str, Any]]]) -> None:
    assert len(panels) >= 5
    empty = [title for title, rows in panels.items() if not rows]
    assert not empty


def test_cost_by_plan_and_model_totals_what_the_core_charged(
    panels: dict[str, list[dict[str, Any]]],
) -> None:
    rows = panels["Cost by plan and model"]
    assert sum((r["charge_usd"] for r in rows), Decimal(0)) == total(billed_ledger(), "charge_usd")
    assert sum((r["flows"] for r in rows), Decimal(0)) == total(billed_ledger(), "flows")
    assert {r["plan_family"] for r in rows} == {"zenmux", "lilac"}


def test_charged_per_plan_over_time_adds_up_to_the_ledger(
    panels: dict[str, list[dict[str, Any]]],
) -> None:
    rows = panels["Charged per plan"]
    assert sum((r["charge_usd"] for r in rows), Decimal(0)) == total(billed_ledger(), "charge_usd")


def test_leakage_panels_show_the_unfunded_requests(panels: dict[str, list[dict[str, Any]]]) -> None:
    unfunded = [e for e in billed_ledger() if e.funding == "unfunded"]
    over_time = panels["Leakage over time"]
    assert sum(r["unfunded_requests"] for r in over_time) == len(unfunded)
    assert sum((r["unfunded_list_cost_usd"] for r in over_time), Decimal(0)) == total(
        unfunded, "list_cost_usd"
    )
    [by_account] = panels["Leakage by account"]
    assert (by_account["account_id"], by_account["unfunded_requests"]) == (LEAK, len(unfunded))
