"""LedgerEntry ↔ wire bytes ↔ insert columns: every contract field, exact values, poison."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

import pytest

from metering.sink.rows import COLUMN_NAMES, COLUMNS, PoisonValue, decode, to_columns
from schemas.ledger import LedgerEntry
from tests.unit.sink.conftest import encoded


def test_columns_are_the_contract_fields_in_order() -> None:
    assert tuple(LedgerEntry.model_fields) == COLUMN_NAMES


@pytest.mark.parametrize(
    ("field", "clickhouse_type"),
    [
        ("list_cost_usd", "Decimal(38, 12)"),
        ("charge_usd", "Decimal(38, 12)"),
        ("flows", "Decimal(38, 12)"),
        ("debit", "Decimal(38, 12)"),
        ("started_at", "DateTime64(6, 'UTC')"),
        ("discount_effective_at", "Nullable(DateTime64(6, 'UTC'))"),
        ("funding", "LowCardinality(String)"),
        ("supply_state", "LowCardinality(Nullable(String))"),
        ("late", "Bool"),
        ("source_offset", "Int64"),
    ],
)
def test_each_column_has_an_explicit_type(field: str, clickhouse_type: str) -> None:
    assert dict(COLUMNS)[field] == clickhouse_type


def test_a_wire_value_decodes_to_the_same_entry(ledger_entries: list[LedgerEntry]) -> None:
    for entry in ledger_entries:
        assert decode(encoded(entry)) == entry


def test_columns_hold_exact_python_values(ledger_entries: list[LedgerEntry]) -> None:
    # given two entries
    first, second = ledger_entries[:2]
    # when turned into columns
    columns = to_columns([first, second])
    # then one list per column, values as the contract holds them (Decimal, aware UTC time)
    assert len(columns) == len(COLUMNS)
    by_name = dict(zip(COLUMN_NAMES, columns, strict=True))
    assert by_name["entry_id"] == [first.entry_id, second.entry_id]
    assert by_name["charge_usd"] == [first.charge_usd, second.charge_usd]
    assert all(isinstance(v, Decimal) for v in by_name["list_cost_usd"])
    assert by_name["started_at"][0].tzinfo is not None
    assert by_name["started_at"][0].utcoffset() == UTC.utcoffset(None)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty value"),
        (b"not json", "not a LedgerEntry"),
        (b"{}", "schema_version"),
        (b'{"schema_version": 1}', "not a LedgerEntry"),
    ],
)
def test_anything_else_is_poison(value: bytes | None, reason: str) -> None:
    with pytest.raises(PoisonValue, match=reason):
        decode(value)


def test_a_float_amount_is_poison(ledger_entries: list[LedgerEntry]) -> None:
    # money as a binary float is refused (strict contract), not coerced
    raw = encoded(ledger_entries[0]).replace(b'"charge_usd":"', b'"charge_usd":0.1,"x":"')
    with pytest.raises(PoisonValue):
        decode(raw)
