"""Ledger entries in and out of the wire and the table: JSON bytes → ``LedgerEntry`` → columns.

The column list is the ``{db}.ledger`` table of ``sql/migrations/0002_ledger.sql``, in the
contract's field order, each with its ClickHouse type spelled out: the insert passes these
types, so clickhouse-connect never has to ``DESCRIBE`` the table per batch. A test keeps
this list, the contract and the migrated table equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from pydantic import ValidationError

from schemas.ledger import LedgerEntry

LEDGER_TABLE: Final = "ledger"

MONEY_SCALE: Final = 12
MONEY: Final = f"Decimal(38, {MONEY_SCALE})"
TIME: Final = "DateTime64(6, 'UTC')"
ENUM: Final = "LowCardinality(String)"

COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("schema_version", "UInt8"),
    ("entry_id", "String"),
    ("kind", ENUM),
    ("account_id", "String"),
    ("request_id", "String"),
    ("api_key_id", "String"),
    ("model", ENUM),
    ("channel", ENUM),
    ("billing_mode", ENUM),
    ("status", ENUM),
    ("started_at", TIME),
    ("completed_at", TIME),
    ("input_tokens", "UInt64"),
    ("cached_input_tokens", "UInt64"),
    ("output_tokens", "UInt64"),
    ("images", "UInt64"),
    ("plan_family", ENUM),
    ("plan", "LowCardinality(Nullable(String))"),
    ("funding", ENUM),
    ("fallback_key_id", "Nullable(String)"),
    ("list_cost_usd", MONEY),
    ("multiplier", MONEY),
    ("supply_state", "LowCardinality(Nullable(String))"),
    ("discount_effective_at", f"Nullable({TIME})"),
    ("catalog_version", ENUM),
    ("flows", MONEY),
    ("charge_usd", MONEY),
    ("debit", MONEY),
    ("unit", ENUM),
    ("window_5h_id", "Nullable(String)"),
    ("window_7d_id", "Nullable(String)"),
    ("period_id", "Nullable(String)"),
    ("overshoot", MONEY),
    ("late", "Bool"),
    ("adjusts_entry_id", "Nullable(String)"),
    ("reason", "Nullable(String)"),
    ("source_topic", ENUM),
    ("source_partition", "Int32"),
    ("source_offset", "Int64"),
)
"""Every column of ``{db}.ledger``: (name, ClickHouse type), in the contract's field order."""

COLUMN_NAMES: Final = tuple(name for name, _ in COLUMNS)
COLUMN_TYPES: Final = tuple(kind for _, kind in COLUMNS)
TIME_COLUMNS: Final = frozenset(name for name, kind in COLUMNS if TIME in kind)
MONEY_COLUMNS: Final = frozenset(name for name, kind in COLUMNS if kind == MONEY)


class PoisonValue(ValueError):
    """A record on the ledger topic is not a valid ``LedgerEntry`` (the message says why)."""


def decode(value: bytes | None) -> LedgerEntry:
    """Parse one ledger record's value; anything that is not a valid entry is ``PoisonValue``."""
    if value is None:
        raise PoisonValue("empty value (a tombstone has no place on the ledger topic)")
    try:
        return LedgerEntry.model_validate_json(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "value"
        raise PoisonValue(
            f"not a LedgerEntry: {where}: {first['msg']} ({exc.error_count()} errors)"
        ) from exc


def to_columns(entries: Sequence[LedgerEntry]) -> list[list[Any]]:
    """Column-oriented data for one insert: one list per column of ``COLUMNS``, in order.

    Values go as Python objects (``Decimal``, aware ``datetime``, ``None``): the driver
    encodes them by the declared types, so money stays exact.
    """
    return [[getattr(entry, name) for entry in entries] for name in COLUMN_NAMES]
