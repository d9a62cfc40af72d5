"""The ledger schema as migrated: engines, keys, dedup windows, columns, roles DDL, and what
a retried insert does to the ledger and its rollups."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from metering.errors import ConfigError
from metering.sink.roles import apply_roles, role_statements
from metering.sink.rows import COLUMNS
from metering.sink.writer import ClickHouseLedgerStore
from metering.warehouse import migrate, parse_url
from schemas.ledger import LedgerEntry
from tests.integration.ledger_pipeline import LIL, billed_ledger, total

pytestmark = pytest.mark.integration

ROLLUPS = ("usage_hourly", "cost_daily", "discount_savings_daily")


@pytest.fixture
def ledger_db(clickhouse_client: Client, clickhouse_database: str) -> str:
    migrate(clickhouse_client, database=clickhouse_database)
    return clickhouse_database


def table_info(client: Client, database: str) -> dict[str, dict[str, Any]]:
    result = client.query(
        "SELECT name, engine, sorting_key, partition_key, create_table_query "
        "FROM system.tables WHERE database = {d:String}",
        parameters={"d": database},
    )
    return {row[0]: dict(zip(result.column_names, row, strict=True)) for row in result.result_rows}


def scalar(client: Client, sql: str) -> Any:
    return client.query(sql).result_rows[0][0]


def test_the_ledger_is_a_replacing_merge_tree_keyed_per_account(
    clickhouse_client: Client, ledger_db: str
) -> None:
    ledger = table_info(clickhouse_client, ledger_db)["ledger"]
    assert ledger["engine"] == "ReplacingMergeTree"
    assert ledger["sorting_key"] == "account_id, started_at, entry_id"
    assert ledger["partition_key"] == "toYYYYMM(started_at)"
    assert "non_replicated_deduplication_window = 1000" in ledger["create_table_query"]


@pytest.mark.parametrize("rollup", ROLLUPS)
def test_each_rollup_target_sums_and_has_a_dedup_window(
    clickhouse_client: Client, ledger_db: str, rollup: str
) -> None:
    tables = table_info(clickhouse_client, ledger_db)
    assert tables[rollup]["engine"] == "SummingMergeTree"
    assert "non_replicated_deduplication_window = 1000" in tables[rollup]["create_table_query"]
    view = tables[f"{rollup}_mv"]
    assert view["engine"] == "MaterializedView"
    assert f"TO {ledger_db}.{rollup}" in view["create_table_query"]


def test_ledger_columns_are_the_sinks_columns(clickhouse_client: Client, ledger_db: str) -> None:
    described = clickhouse_client.query(f"DESCRIBE TABLE {ledger_db}.ledger").result_rows
    assert [(row[0], row[1]) for row in described] == list(COLUMNS)
    assert [name for name, _ in COLUMNS] == list(LedgerEntry.model_fields)


def test_migrating_again_applies_nothing(clickhouse_client: Client, ledger_db: str) -> None:
    assert migrate(clickhouse_client, database=ledger_db) == []


def test_the_roles_ddl_parses(clickhouse_client: Client) -> None:
    statements = role_statements("metering")
    assert len(statements) == 5
    for statement in statements:
        ast = clickhouse_client.query(f"EXPLAIN AST {statement}").result_rows
        assert ast[0][0].split()[0] in ("CreateRoleQuery", "GrantQuery"), statement


def test_roles_apply_on_a_server_and_are_refused_in_one_line_on_chdb(
    clickhouse_client: Client, clickhouse_url: str, ledger_db: str
) -> None:
    if parse_url(clickhouse_url).kind == "chdb":
        # chDB has no writable user directory: why roles are not a migration
        with pytest.raises(ConfigError, match=r"statement 1 of 5 refused .*ACCESS_DENIED"):
            apply_roles(clickhouse_client, ledger_db)
        return
    try:
        apply_roles(clickhouse_client, ledger_db)
    except ConfigError as exc:  # a server user without access management: the same one line
        assert "access management" in str(exc)
        return
    grants = clickhouse_client.query(
        "SELECT role_name, access_type, table FROM system.grants "
        "WHERE role_name LIKE 'metering_%' AND database = {d:String}",
        parameters={"d": ledger_db},
    ).result_rows
    assert ("metering_writer", "INSERT", "ledger") in grants
    assert all(access != "INSERT" for role, access, _ in grants if role == "metering_analyst")


def test_a_retried_insert_lands_once_in_the_ledger_and_every_rollup(
    clickhouse_client: Client, ledger_db: str
) -> None:
    # given the scenario's entries inserted as one batch
    store = ClickHouseLedgerStore(clickhouse_client, ledger_db)
    entries = list(billed_ledger())
    store.insert(entries, token="metering.ledger|0:0-128|129|abc")
    # when the identical insert is retried with the same token (a timeout that did land)
    store.insert(entries, token="metering.ledger|0:0-128|129|abc")
    # then each row is stored once (no FINAL needed) and the rollups counted it once
    assert scalar(clickhouse_client, f"SELECT count() FROM {ledger_db}.ledger") == len(entries)
    rollup_charge = scalar(clickhouse_client, f"SELECT sum(charge_usd) FROM {ledger_db}.cost_daily")
    assert rollup_charge == total(entries, "charge_usd")
    rollup_debit = scalar(clickhouse_client, f"SELECT sum(debit) FROM {ledger_db}.usage_hourly")
    assert rollup_debit == total(entries, "debit")
    lilac_charges = [
        e
        for e in entries
        if e.account_id == LIL and e.kind == "charge" and e.funding == "subscription"
    ]
    savings = scalar(
        clickhouse_client, f"SELECT sum(savings_usd) FROM {ledger_db}.discount_savings_daily"
    )
    assert savings == total(lilac_charges, "list_cost_usd") - total(lilac_charges, "charge_usd")
    assert savings > Decimal(0)


def test_the_same_entries_in_another_block_collapse_under_final(
    clickhouse_client: Client, ledger_db: str
) -> None:
    # given entries inserted twice under different tokens (a worker re-emission that
    # bypassed the sink's stored-entry check): two copies on disk
    store = ClickHouseLedgerStore(clickhouse_client, ledger_db)
    entries = list(billed_ledger())[:20]
    store.insert(entries, token="first")
    store.insert(entries, token="second")
    assert scalar(clickhouse_client, f"SELECT count() FROM {ledger_db}.ledger") == 40
    # then FINAL (what every analyst query uses) sees each entry once, before any merge
    assert scalar(clickhouse_client, f"SELECT count() FROM {ledger_db}.ledger FINAL") == 20
    final_total = scalar(clickhouse_client, f"SELECT sum(charge_usd) FROM {ledger_db}.ledger FINAL")
    assert final_total == total(entries, "charge_usd")
    # and a merge removes the copies for good
    clickhouse_client.command(f"OPTIMIZE TABLE {ledger_db}.ledger FINAL")
    assert scalar(clickhouse_client, f"SELECT count() FROM {ledger_db}.ledger") == 20
