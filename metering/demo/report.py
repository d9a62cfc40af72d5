"""The demo's closing report: usage and cost from ClickHouse, and the check that ClickHouse
holds exactly what the billing core derives offline from the same input events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client
from rich.table import Table

from billing.catalog.model import Catalog
from billing.engine import Engine
from billing.replay import Replay
from metering.audit.diff import diff_entries
from metering.audit.rows import from_entries
from metering.replay.collector import collector_paused
from metering.replay.logfile import LogRecord
from metering.warehouse.queries import run_query
from schemas.ledger import LedgerEntry

MONEY_FIELDS = ("list_cost_usd", "charge_usd", "flows", "debit")


def _cell(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{value:,.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def query_table(
    client: Client, name: str, title: str, columns: Sequence[str], rows: int = 10, **params: Any
) -> Table:
    """Rows of ``sql/queries/<name>.sql`` as a rich table of the named columns."""
    found = run_query(client, name, **params)
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column in _TEXT else "right")
    for row in found[:rows]:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    return table


_TEXT = {"plan_family", "model", "account_id", "source"}


def report_tables(client: Client, db: str, start: datetime, end: datetime) -> list[Table]:
    span: dict[str, Any] = {"db": db, "start": start, "end": end}
    return [
        query_table(
            client, "cost_by_model", "cost by model (top 10 by list cost)",
            ("plan_family", "model", "requests", "input_tokens", "output_tokens",
             "list_cost_usd", "charge_usd", "flows"),
            **span,
        ),
        query_table(
            client, "funding_split", "funding split",
            ("plan_family", "source", "requests", "list_cost_usd", "charge_usd", "debit"),
            account_id="", **span,
        ),
        query_table(
            client, "top_accounts", "top accounts",
            ("account_id", "plan_family", "requests", "list_cost_usd", "charge_usd", "flows",
             "subscription_debit", "payg_usd", "unfunded_usd"),
            rows=8, limit=8, **span,
        ),
    ]  # fmt: skip


def replay_ledger(records: Sequence[LogRecord], catalog: Catalog) -> list[LedgerEntry]:
    """The ledger the billing core derives from the input records (``metering replay``)."""
    engine = Engine(catalog, accounts={}, seen={}, discounts={})
    replay = Replay(engine)
    emitted = replay.run((r.source, r.payload, r.key) for r in records)
    with collector_paused():
        return [item.value for item in emitted if isinstance(item.value, LedgerEntry)]


@dataclass(frozen=True)
class Consistency:
    """ClickHouse against the offline replay: entry for entry, and totals."""

    stored: int
    replayed: int
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    different: tuple[str, ...]
    stored_totals: dict[str, Decimal]
    replayed_totals: dict[str, Decimal]

    @property
    def ok(self) -> bool:
        return (
            not (self.missing or self.extra or self.different)
            and self.stored_totals == self.replayed_totals
        )

    def table(self) -> Table:
        verdict = "[green]MATCH[/green]" if self.ok else "[red]MISMATCH[/red]"
        table = Table(title=f"ClickHouse vs offline replay of the same events: {verdict}")
        table.add_column("")
        table.add_column("ClickHouse", justify="right")
        table.add_column("replay", justify="right")
        table.add_row("ledger entries", f"{self.stored:,}", f"{self.replayed:,}")
        for name in MONEY_FIELDS:
            table.add_row(
                f"sum({name})",
                f"{self.stored_totals[name]:,.12f}",
                f"{self.replayed_totals[name]:,.12f}",
            )
        if not self.ok:
            table.add_row(
                "entries differing",
                f"missing {len(self.missing)}, extra {len(self.extra)}",
                f"different {len(self.different)}",
            )
        return table


def totals(entries: Sequence[LedgerEntry]) -> dict[str, Decimal]:
    return {name: sum((getattr(e, name) for e in entries), Decimal(0)) for name in MONEY_FIELDS}


def compare(stored: Sequence[LedgerEntry], replayed: Sequence[LedgerEntry]) -> Consistency:
    """Entry ids in one and not the other, and ids whose fields differ (the audit's diff)."""
    found = diff_entries(from_entries(stored), from_entries(replayed))
    return Consistency(
        stored=len({e.entry_id for e in stored}),
        replayed=len({e.entry_id for e in replayed}),
        missing=tuple(d.entry_id for d in found if d.problem == "missing"),
        extra=tuple(d.entry_id for d in found if d.problem == "extra"),
        different=tuple(d.entry_id for d in found if d.problem == "different"),
        stored_totals=totals(list({e.entry_id: e for e in stored}.values())),
        replayed_totals=totals(list({e.entry_id: e for e in replayed}.values())),
    )
