"""The migrations' cluster form, checked by ClickHouse's own engine.

Three levels: every rendered statement parses (``formatQuerySingleLine`` in the session's
engine, cluster or not); the engine's canonical text of each replicated table equals the
single-node table's but for the intended differences (name, ``ON CLUSTER``, Replicated engine
with its Keeper path, replicated dedup window); and the whole form, ``ON CLUSTER`` aside,
is created on a one-shard cluster in chDB (``cluster_engine.py``), where the analyst queries
and the dashboard's ClickHouse panels run through the Distributed tables under their
single-node names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.client import Client

from metering.warehouse import migrate
from metering.warehouse.errors import MigrationError
from metering.warehouse.migrations import read_migrations
from metering.warehouse.queries import query_text
from tests.integration.cluster_engine import run_on_one_shard_cluster
from tests.integration.test_analyst_queries import QUERY_PARAMETERS
from tests.observability import dashboards, expand_clickhouse, targets

pytestmark = pytest.mark.integration

CLUSTER = "metering"
DB = "metering_cluster"
SHARDED_BY_ACCOUNT = {"ledger", "usage_hourly", "discount_savings_daily"}
ROLLUPS = {"usage_hourly", "cost_daily", "discount_savings_daily"}
PANEL_START, PANEL_END = datetime(2026, 11, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)


def single_form() -> list[str]:
    return [s for file in read_migrations() for s in file.statements(DB)]


def cluster_form() -> list[str]:
    return [s for file in read_migrations() for s in file.statements(DB, cluster=CLUSTER)]


def canonical(client: Client, statement: str) -> str:
    """ClickHouse's own one-line formatting of ``statement`` (raises if it does not parse)."""
    result = client.query("SELECT formatQuerySingleLine({q:String})", parameters={"q": statement})
    return str(result.result_rows[0][0])


_TABLE = re.compile(
    r"^CREATE TABLE IF NOT EXISTS (?P<db>\w+)\.(?P<name>\w+)(?: ON CLUSTER (?P<cluster>\w+))? "
    r"(?:\((?P<columns>.*)\) )?(?:AS (?P<as>\S+) )?ENGINE = (?P<engine>\w+)"
    r"(?:\((?P<args>.*?)\))?(?P<rest>(?: [A-Z].*)?)$"
)


@dataclass(frozen=True)
class Table:
    name: str
    cluster: str | None
    columns: str | None
    as_table: str | None
    engine: str
    args: str
    rest: str


def tables(client: Client, statements: list[str]) -> dict[str, Table]:
    found = {}
    for statement in statements:
        match = _TABLE.match(canonical(client, statement))
        if match is not None:
            found[match["name"]] = Table(
                match["name"],
                match["cluster"],
                match["columns"],
                match["as"],
                match["engine"],
                match["args"] or "",
                match["rest"],
            )
    return found


def test_every_statement_of_the_cluster_form_parses(clickhouse_client: Client) -> None:
    for statement in cluster_form():
        assert canonical(clickhouse_client, statement).startswith("CREATE ")


def test_replicated_tables_equal_the_single_node_tables_but_for_replication(
    clickhouse_client: Client,
) -> None:
    # given each table of the single-node form, as ClickHouse formats it
    single = tables(clickhouse_client, single_form())
    cluster = tables(clickhouse_client, cluster_form())
    assert {"ledger", *ROLLUPS} <= single.keys()
    for name, table in single.items():
        local = cluster[f"{name}_local"]
        # then its local twin has the same columns and indexes, partitioning, sorting key
        assert (local.cluster, local.columns) == (CLUSTER, table.columns)
        # in the replicated flavour of the same engine, at a Keeper path of its own per shard
        assert local.engine == f"Replicated{table.engine}"
        assert local.args == f"'/clickhouse/tables/{{shard}}/{DB}/{name}_local', '{{replica}}'"
        # and the same dedup window, counted by Keeper instead of the part log
        assert "non_replicated_deduplication_window = 1000" in table.rest
        assert local.rest == table.rest.replace(
            "non_replicated_deduplication_window", "replicated_deduplication_window"
        )


def test_distributed_tables_keep_the_single_node_names_and_shard_by_account(
    clickhouse_client: Client,
) -> None:
    cluster = tables(clickhouse_client, cluster_form())
    for name in {"ledger", *ROLLUPS}:
        table = cluster[name]
        key = ", cityHash64(account_id)" if name in SHARDED_BY_ACCOUNT else ""
        assert (table.cluster, table.as_table, table.engine) == (
            CLUSTER,
            f"{DB}.{name}_local",
            "Distributed",
        )
        assert table.args == f"{CLUSTER}, {DB}, {name}_local{key}"
    paths = [t.args.split(",")[0] for t in cluster.values() if t.engine.startswith("Replicated")]
    assert len(paths) == len(set(paths)) == 1 + len(ROLLUPS)  # one Keeper path per table


def test_materialized_views_roll_up_the_local_ledger_into_local_tables(
    clickhouse_client: Client,
) -> None:
    views = {
        s: c
        for s, c in zip(single_form(), cluster_form_views(), strict=True)
        if s.startswith("CREATE MATERIALIZED VIEW")
    }
    assert len(views) == len(ROLLUPS)
    for single, cluster in views.items():
        expected = re.sub(
            rf"\b{DB}\.(\w+)", rf"{DB}.\1_local", canonical(clickhouse_client, single)
        )
        # the view's own name is not a table: it keeps its name and gains ON CLUSTER
        expected = re.sub(
            rf"VIEW IF NOT EXISTS {DB}\.(\w+)_local",
            rf"VIEW IF NOT EXISTS {DB}.\1 ON CLUSTER {CLUSTER}",
            expected,
        )
        assert canonical(clickhouse_client, cluster) == expected


def cluster_form_views() -> list[str]:
    """The cluster form aligned with ``single_form``: one rendered view per single view."""
    out = []
    for statement in cluster_form():
        if statement.startswith("CREATE TABLE") and " AS " in statement.split("\n")[0]:
            continue  # the Distributed twin of the previous table
        out.append(statement)
    return out


def test_the_cluster_form_runs_and_serves_the_queries_under_the_same_names() -> None:
    # given the cluster form created on a one-shard cluster (ON CLUSTER needs a DDL queue
    # that an embedded engine does not have: each node would run the same statement)
    statements = [s.replace(f" ON CLUSTER {CLUSTER}", "") for s in cluster_form()]
    queries = {
        name: (query_text(name), {"db": DB, **params}) for name, params in QUERY_PARAMETERS.items()
    }
    panels = {
        f"panel {t.panel}": (expand_clickhouse(t.text, DB, PANEL_START, PANEL_END), {})
        for dashboard in dashboards().values()
        for t in targets(dashboard)
        if t.kind == "clickhouse"
    }
    # when every analyst query and every ClickHouse panel of the dashboard runs against it
    run = run_on_one_shard_cluster(CLUSTER, DB, statements, queries | panels)
    # then the tables exist with the intended engines, keys and dedup windows
    ledger_local = run.tables["ledger_local"]
    assert ledger_local["engine"] == "ReplicatedReplacingMergeTree"
    assert ledger_local["sorting_key"] == "account_id, started_at, entry_id"
    assert ledger_local["partition_key"] == "toYYYYMM(started_at)"
    for name in {"ledger", *ROLLUPS}:
        assert run.tables[name]["engine"] == "Distributed"
        assert (
            "replicated_deduplication_window = 1000" in run.tables[f"{name}_local"]["engine_full"]
        )
    assert "cityHash64(account_id)" in run.tables["ledger"]["engine_full"]
    for view in ("usage_hourly_mv", "cost_daily_mv", "discount_savings_daily_mv"):
        query = run.tables[view]["create_table_query"]
        assert f"TO {DB}.{view.removesuffix('_mv')}_local" in query
        assert f"FROM {DB}.ledger_local" in query
    # and every query runs through the Distributed tables (FINAL included)
    failed = {name: r["error"] for name, r in run.results.items() if "error" in r}
    assert not failed
    assert set(run.results) == set(QUERY_PARAMETERS) | set(panels)


def test_a_single_node_store_is_not_migrated_in_its_cluster_form(
    clickhouse_client: Client, clickhouse_database: str
) -> None:
    # given a store migrated in the single-node form
    migrate(clickhouse_client, database=clickhouse_database)
    # when the cluster form is asked for, then nothing runs and the operator is told why
    with pytest.raises(MigrationError, match="single-node store"):
        migrate(clickhouse_client, database=clickhouse_database, cluster=CLUSTER)
