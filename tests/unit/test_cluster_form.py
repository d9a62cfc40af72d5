"""The cluster form of the migrations, rule by rule, without ClickHouse (the engine parses and
runs the rendered statements in tests/integration/test_cluster_schema.py)."""

from __future__ import annotations

import re

import pytest

from metering.warehouse.cluster import Cluster, ClusterFormError
from metering.warehouse.migration_plan import parse_file, split_statements
from metering.warehouse.migrations import read_migrations

C = Cluster("metering")


@pytest.mark.parametrize(
    ("single", "cluster"),
    [
        # rule 1: the database is created on every node
        (
            "CREATE DATABASE IF NOT EXISTS {db}",
            ["CREATE DATABASE IF NOT EXISTS {db} ON CLUSTER metering"],
        ),
        # rule 2: a table with account_id: a replicated local table, sharded by account
        (
            "CREATE TABLE IF NOT EXISTS {db}.t\n(\n    account_id String,\n    n UInt8\n)\n"
            "ENGINE = ReplacingMergeTree\nORDER BY (account_id, n)\n"
            "SETTINGS non_replicated_deduplication_window = 1000",
            [
                "CREATE TABLE IF NOT EXISTS {db}.t_local ON CLUSTER metering\n(\n"
                "    account_id String,\n    n UInt8\n)\n"
                "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{db}/t_local',"
                " '{replica}')\nORDER BY (account_id, n)\n"
                "SETTINGS replicated_deduplication_window = 1000",
                "CREATE TABLE IF NOT EXISTS {db}.t ON CLUSTER metering AS {db}.t_local\n"
                "ENGINE = Distributed(metering, {db}, t_local, cityHash64(account_id))",
            ],
        ),
        # rule 2: engine arguments follow the Keeper path; no account_id, no sharding key
        (
            "CREATE TABLE {db}.daily (day Date, v UInt64, ver UInt32) "
            "ENGINE = ReplacingMergeTree(ver) ORDER BY day",
            [
                "CREATE TABLE {db}.daily_local ON CLUSTER metering (day Date, v UInt64, ver UInt32) "
                "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{db}/daily_local',"
                " '{replica}', ver) ORDER BY day",
                "CREATE TABLE {db}.daily ON CLUSTER metering AS {db}.daily_local\n"
                "ENGINE = Distributed(metering, {db}, daily_local)",
            ],
        ),
        # rule 3: a view reads and writes the local tables of its shard
        (
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.v_mv TO {db}.v AS\n"
            "SELECT account_id, sum(ledger.n) AS n FROM {db}.ledger AS ledger GROUP BY account_id",
            [
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.v_mv ON CLUSTER metering "
                "TO {db}.v_local AS\nSELECT account_id, sum(ledger.n) AS n "
                "FROM {db}.ledger_local AS ledger GROUP BY account_id"
            ],
        ),
    ],
)
def test_each_rule_renders_the_cluster_form(single: str, cluster: list[str]) -> None:
    assert C.statements(single) == cluster


def test_a_column_merely_named_like_account_id_does_not_shard() -> None:
    # given a table whose columns mention account_id only inside another name
    rendered = C.statements(
        "CREATE TABLE {db}.t (parent_account_id String) ENGINE = MergeTree ORDER BY tuple()"
    )
    # then its Distributed table has no sharding key
    assert rendered[1].endswith("Distributed(metering, {db}, t_local)")


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("ALTER TABLE {db}.ledger ADD COLUMN x UInt8", "no cluster form"),
        ("INSERT INTO {db}.t VALUES (1)", "no cluster form"),
        ("CREATE TABLE {db}.t (a UInt8) ENGINE = Memory", "engine Memory"),
        (
            "CREATE TABLE {db}.t (a UInt8) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY a",
            "single-node",
        ),
        ("CREATE MATERIALIZED VIEW {db}.v ENGINE = MergeTree ORDER BY a AS SELECT 1", "no TO"),
    ],
)
def test_statements_without_a_cluster_form_are_refused_by_name(statement: str, reason: str) -> None:
    with pytest.raises(ClusterFormError, match=reason):
        C.statements(statement)


@pytest.mark.parametrize("name", ["", "my-cluster", "c; DROP", "1c"])
def test_cluster_names_that_are_not_identifiers_are_refused(name: str) -> None:
    with pytest.raises(ClusterFormError, match="not a plain identifier"):
        Cluster(name)


def test_the_history_is_replicated_to_every_node_under_one_keeper_path() -> None:
    ddl = (
        "CREATE TABLE IF NOT EXISTS {db}.schema_migrations (v UInt32) ENGINE = MergeTree ORDER BY v"
    )
    assert C.everywhere(ddl) == (
        "CREATE TABLE IF NOT EXISTS {db}.schema_migrations ON CLUSTER metering (v UInt32) "
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{db}/schema_migrations', "
        "'{replica}') ORDER BY v"
    )


def test_a_file_renders_its_cluster_form_for_the_database() -> None:
    # given one file and a database name
    file = parse_file(
        "0002_t.sql",
        b"CREATE TABLE {db}.t (account_id String) ENGINE = MergeTree ORDER BY account_id;\n",
    )
    # when it is rendered with and without a cluster
    single, cluster = file.statements("m"), file.statements("m", cluster="metering")
    # then the single form is unchanged and the cluster form names the database everywhere,
    # Keeper path included, while the ClickHouse macros stay for each server to fill in
    assert single == ["CREATE TABLE m.t (account_id String) ENGINE = MergeTree ORDER BY account_id"]
    assert "'/clickhouse/tables/{shard}/m/t_local', '{replica}'" in cluster[0]
    assert cluster[1].endswith("Distributed(metering, m, t_local, cityHash64(account_id))")
    assert "{db}" not in "".join(cluster)


def test_every_shipped_migration_has_a_cluster_form() -> None:
    # given the project's migrations
    statements = [s for file in read_migrations() for s in split_statements(file.sql)]
    tables = 0
    for statement in statements:
        # when each statement is rendered
        rendered = C.statements(statement)
        # then every statement runs on the whole cluster
        assert all(" ON CLUSTER metering" in r for r in rendered)
        # and each table became a replicated local table plus its Distributed name over it
        if table := re.match(r"CREATE TABLE IF NOT EXISTS \{db\}\.(\w+)", statement):
            local, distributed = rendered
            assert "ENGINE = Replicated" in local
            assert f"Distributed(metering, {{db}}, {table[1]}_local" in distributed
            tables += 1
    assert tables >= 4  # the ledger and its three rollups at least
