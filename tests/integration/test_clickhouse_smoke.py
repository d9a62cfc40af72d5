"""The ledger store keeps money exact (Decimal(38, 12) in, the same Decimal out, exact sums),
and one URL gives one client per process."""

from __future__ import annotations

from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest

from metering.errors import ConfigError, ServiceUnavailable
from metering.warehouse import connect

pytestmark = pytest.mark.integration

AMOUNTS = [
    Decimal("0.000000000001"),  # the smallest step at scale 12
    Decimal("12345678901234567890.123456789012"),  # 32 significant digits
    Decimal("-0.5"),
    Decimal("3.100000000000"),
]


def test_decimal_amounts_round_trip_and_sum_exactly(
    clickhouse_client: Any, clickhouse_database: str
) -> None:
    # given a table with a Decimal(38, 12) amount column
    table = f"{clickhouse_database}.amounts"
    clickhouse_client.command(
        f"CREATE TABLE {table} (id UInt32, amount Decimal(38, 12)) ENGINE = MergeTree ORDER BY id"
    )

    # when Python Decimals are inserted with explicit column names and types (no DESCRIBE)
    clickhouse_client.insert(
        "amounts",
        [[i, amount] for i, amount in enumerate(AMOUNTS)],
        database=clickhouse_database,
        column_names=["id", "amount"],
        column_type_names=["UInt32", "Decimal(38, 12)"],
    )

    # then every value reads back exactly, as a Decimal
    rows = clickhouse_client.query(f"SELECT id, amount FROM {table} ORDER BY id").result_rows
    assert [amount for _, amount in rows] == AMOUNTS
    assert all(isinstance(amount, Decimal) for _, amount in rows)

    # and the SQL sum is exact, still at scale 12 (Python's default 28-digit context would
    # round this sum: compare at 38 digits, the column's precision)
    total, total_type = clickhouse_client.query(
        f"SELECT sum(amount), toTypeName(sum(amount)) FROM {table}"
    ).result_rows[0]
    with localcontext(prec=38):
        assert total == sum(AMOUNTS, Decimal(0))
    assert total == Decimal("12345678901234567892.723456789013")
    assert total_type == "Decimal(38, 12)"


def test_the_store_reports_its_version(clickhouse_client: Any) -> None:
    # given the session store, when asked for its version, then it is a modern ClickHouse
    version = clickhouse_client.query("SELECT version()").result_rows[0][0]
    assert int(version.split(".")[0]) >= 24


# --- one client per store URL --------------------------------------------------------------


def test_connecting_again_returns_the_same_client(
    clickhouse_url: str, clickhouse_client: Any
) -> None:
    assert connect(clickhouse_url) is clickhouse_client


def test_a_second_chdb_path_in_the_process_is_refused(
    clickhouse_url: str, clickhouse_client: Any, tmp_path: Path
) -> None:
    if not clickhouse_url.startswith("chdb:"):
        pytest.skip("the session store is a server: this process has no chDB path to protect")
    # given the session's chDB store open in this process
    other = tmp_path / "other-chdb"
    # when another chDB path is asked for
    with pytest.raises(ConfigError, match="chDB allows one path per process"):
        connect(f"chdb://{other}")
    # then nothing was created for it and the session store still answers
    assert not other.exists()
    assert clickhouse_client.query("SELECT 1").result_rows == [(1,)]


@pytest.mark.parametrize(
    "url", ["", "mysql://db:3306", "chdb://relative/path", "chdb:///p?x=1", "http://:8123"]
)
def test_unsupported_urls_name_the_setting_to_fix(url: str) -> None:
    with pytest.raises(ConfigError, match="CLICKHOUSE_URL"):
        connect(url)


def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        connect("http://user:s3cret@127.0.0.1:1/metering")
    message = str(caught.value)
    assert "\n" not in message
    assert "s3cret" not in message
    assert message.endswith("Connection refused")
