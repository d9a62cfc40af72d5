"""Every query of sql/queries against ledger rows the sink wrote (the billed scenario, through
Kafka and the sink), checked to the last decimal against the billing core's own entries."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from metering.sink.writer import ClickHouseLedgerStore
from metering.warehouse import migrate
from metering.warehouse.queries import QUERIES_DIR as QUERIES
from metering.warehouse.queries import run_query
from schemas.ledger import LedgerEntry
from tests.factories import at
from tests.integration.ledger_pipeline import (
    LEAK,
    LIL,
    ZEN,
    billed_ledger,
    scenario,
    sink_filled_database,
    total,
)
from tests.unit.billing.conftest import run_scenario

pytestmark = pytest.mark.integration

START, END = "2026-11-01 00:00:00", "2027-01-01 00:00:00"
Row = dict[str, Any]


@pytest.fixture(scope="module")
async def db(kafka_bootstrap: str, clickhouse_client: Client) -> AsyncIterator[str]:
    """A database whose ledger the sink filled from a topic holding the billed scenario."""
    async with sink_filled_database(kafka_bootstrap, clickhouse_client, "queries") as name:
        yield name


def ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def naive(value: datetime) -> datetime:
    return value.replace(tzinfo=None)


def group(
    entries: Iterable[LedgerEntry],
    key: Callable[[LedgerEntry], tuple[Any, ...]],
    columns: dict[str, Callable[[list[LedgerEntry]], Any]],
) -> dict[tuple[Any, ...], Row]:
    """Python's own GROUP BY over the core's entries: the expected query result."""
    groups: dict[tuple[Any, ...], list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        groups[key(entry)].append(entry)
    return {k: {name: f(rows) for name, f in columns.items()} for k, rows in groups.items()}


def keyed(rows: list[Row], *key: str) -> dict[tuple[Any, ...], Row]:
    return {tuple(r[k] for k in key): {c: v for c, v in r.items() if c not in key} for r in rows}


def charges(entries: list[LedgerEntry]) -> int:
    return sum(1 for e in entries if e.kind == "charge")


def summed(field: str, where: Callable[[LedgerEntry], bool] = lambda e: True) -> Any:
    return lambda rows: total((e for e in rows if where(e)), field)


RANGE = {"start": START, "end": END}
QUERY_PARAMETERS: dict[str, dict[str, Any]] = {
    "current_window_usage": {"account_id": ZEN, "as_of": "2026-11-02 15:30:00"},
    "window_usage": {"account_id": LIL},
    "flow_consumption": {"account_id": "", **RANGE},
    "cost_by_model": RANGE,
    "funding_split": {"account_id": "", **RANGE},
    "leakage": RANGE,
    "top_accounts": {"limit": 10, **RANGE},
}


def test_every_query_file_is_tested() -> None:
    assert {p.stem for p in QUERIES.glob("*.sql")} == set(QUERY_PARAMETERS)


@pytest.fixture(scope="module")
def db_with_copies(clickhouse_client: Client) -> Iterator[str]:
    """The scenario inserted twice under two tokens: two copies of every entry on disk (what a
    re-emission racing the sink's stored-entry check would leave), not merged yet."""
    name = f"test_copies_{uuid.uuid4().hex[:12]}"
    migrate(clickhouse_client, database=name)
    store = ClickHouseLedgerStore(clickhouse_client, name)
    try:
        store.insert(list(billed_ledger()), token="first")
        store.insert(list(billed_ledger()), token="second")
        count = clickhouse_client.query(f"SELECT count() FROM {name}.ledger").result_rows[0][0]
        assert count == 2 * len(billed_ledger())
        yield name
    finally:
        clickhouse_client.command(f"DROP DATABASE IF EXISTS {name} SYNC")


@pytest.mark.parametrize("query", sorted(QUERY_PARAMETERS))
def test_each_query_counts_an_entry_once_whatever_copies_exist(
    clickhouse_client: Client, db: str, db_with_copies: str, query: str
) -> None:
    parameters = QUERY_PARAMETERS[query]
    once = run_query(clickhouse_client, query, db=db, **parameters)
    twice = run_query(clickhouse_client, query, db=db_with_copies, **parameters)
    assert once  # every query has rows for the scenario
    assert twice == once


def expected_windows(account: str) -> dict[tuple[str, str], Row]:
    out: dict[tuple[str, str], Row] = {}
    mine = [e for e in billed_ledger() if e.account_id == account]
    for kind, field in (("5h", "window_5h_id"), ("7d", "window_7d_id"), ("period", "period_id")):
        for window_id in {getattr(e, field) for e in mine} - {None}:
            rows = [e for e in mine if getattr(e, field) == window_id]
            out[(kind, window_id)] = {
                "consumed": total(rows, "debit"),
                "funded_requests": sum(
                    1 for e in rows if e.kind == "charge" and e.funding == "subscription"
                ),
                "entries": len(rows),
                "unit": rows[0].unit,
            }
    return out


@pytest.mark.parametrize("account", [ZEN, LEAK, LIL])
def test_window_usage_sums_each_windows_debits(
    clickhouse_client: Client, db: str, account: str
) -> None:
    rows = run_query(clickhouse_client, "window_usage", db=db, account_id=account)
    got = {
        k: {c: v[c] for c in ("consumed", "funded_requests", "entries", "unit")}
        for k, v in keyed(rows, "window_kind", "window_id").items()
    }
    assert got == expected_windows(account)
    for row in rows:  # opened_at is read back from the window id
        assert row["window_id"].endswith(row["opened_at"].strftime("%Y-%m-%dT%H:%M:%S") + "Z")


def test_an_exhausted_window_reports_what_the_core_reported(
    clickhouse_client: Client, db: str
) -> None:
    # the core's own `exhausted` event carries the window's consumption: the ledger agrees
    exhausted = [q for q in run_scenario(scenario()).quota if q.type == "exhausted"]
    assert {q.account_id for q in exhausted} == {ZEN, LEAK}
    for event in exhausted:
        rows = run_query(clickhouse_client, "window_usage", db=db, account_id=event.account_id)
        [row] = [r for r in rows if r["window_id"] == event.window_id]
        assert row["consumed"] == event.consumed
        assert row["consumed"] >= event.cap  # the crossing request was charged in full


@pytest.mark.parametrize(
    ("account", "as_of", "expected_ids"),
    [
        # in ZEN's second 5h window (opened by the 6h chats): all three kinds are current
        (
            ZEN,
            at(hours=6, minutes=30),
            {
                "5h": "acct_zen/5h/2026-11-02T15:00:00Z",
                "7d": "acct_zen/7d/2026-11-02T09:00:00Z",
                "period": "acct_zen/period/2026-11-02T08:00:00Z",
            },
        ),
        # after that window reset and before another opened: no current 5h window
        (
            ZEN,
            at(hours=12),
            {
                "7d": "acct_zen/7d/2026-11-02T09:00:00Z",
                "period": "acct_zen/period/2026-11-02T08:00:00Z",
            },
        ),
        # Lilac after its first 5h window reset: the window opened at 14:01 is current
        (
            LIL,
            at(hours=6, minutes=30),
            {
                "5h": "acct_lil/5h/2026-11-02T14:01:00Z",
                "7d": "acct_lil/7d/2026-11-02T09:00:00Z",
                "period": "acct_lil/period/2026-11-02T08:00:00Z",
            },
        ),
    ],
)
def test_current_window_usage(
    clickhouse_client: Client, db: str, account: str, as_of: datetime, expected_ids: dict[str, str]
) -> None:
    rows = run_query(
        clickhouse_client, "current_window_usage", db=db, account_id=account, as_of=ts(as_of)
    )
    windows = expected_windows(account)
    assert {r["window_kind"]: r["window_id"] for r in rows} == expected_ids
    for row in rows:
        expected = windows[(row["window_kind"], row["window_id"])]
        assert row["consumed"] == expected["consumed"]
        assert row["funded_requests"] == expected["funded_requests"]
        length = {"5h": timedelta(hours=5), "7d": timedelta(days=7)}.get(row["window_kind"])
        if length is None:
            assert row["resets_at"] is None
        else:
            assert row["resets_at"] == row["opened_at"] + length
            assert naive(row["opened_at"]) <= naive(as_of) < naive(row["resets_at"])


FLOW_COLUMNS = {
    "requests": charges,
    "flows": summed("flows"),
    "flows_debited": summed("debit", lambda e: e.funding == "subscription"),
    "flows_payg": summed("flows", lambda e: e.funding == "payg"),
    "flows_unfunded": summed("flows", lambda e: e.funding == "unfunded"),
    "list_cost_usd": summed("list_cost_usd"),
}


@pytest.mark.parametrize("account", ["", ZEN, LEAK])
def test_flow_consumption_by_model_and_channel(
    clickhouse_client: Client, db: str, account: str
) -> None:
    rows = run_query(
        clickhouse_client,
        "flow_consumption",
        db=db,
        account_id=account,
        start=START,
        end=END,
    )
    zenmux = [
        e for e in billed_ledger() if e.plan_family == "zenmux" and account in ("", e.account_id)
    ]
    expected = group(zenmux, lambda e: (e.model, e.channel), FLOW_COLUMNS)
    assert keyed(rows, "model", "channel") == expected
    assert {channel for _, channel in expected} == {"api", "studio"}
    assert rows == sorted(rows, key=lambda r: r["flows"], reverse=True)


def test_cost_by_model(clickhouse_client: Client, db: str) -> None:
    rows = run_query(clickhouse_client, "cost_by_model", db=db, start=START, end=END)
    expected = group(
        billed_ledger(),
        lambda e: (e.plan_family, e.model),
        {
            "requests": charges,
            "adjustments": lambda rows: sum(1 for e in rows if e.kind == "adjustment"),
            "input_tokens": lambda rows: sum(e.input_tokens for e in rows),
            "cached_input_tokens": lambda rows: sum(e.cached_input_tokens for e in rows),
            "output_tokens": lambda rows: sum(e.output_tokens for e in rows),
            "images": lambda rows: sum(e.images for e in rows),
            "list_cost_usd": summed("list_cost_usd"),
            "charge_usd": summed("charge_usd"),
            "flows": summed("flows"),
        },
    )
    assert keyed(rows, "plan_family", "model") == expected
    assert sum(r["charge_usd"] for r in rows) == total(billed_ledger(), "charge_usd")


def source(entry: LedgerEntry) -> str:
    if entry.funding == "payg":
        return "payg_fallback" if entry.fallback_key_id is not None else "payg_choice"
    return entry.funding


@pytest.mark.parametrize("account", ["", ZEN, LEAK, LIL])
def test_funding_split(clickhouse_client: Client, db: str, account: str) -> None:
    rows = run_query(
        clickhouse_client, "funding_split", db=db, account_id=account, start=START, end=END
    )
    mine = [e for e in billed_ledger() if account in ("", e.account_id)]
    expected = group(
        mine,
        lambda e: (e.plan_family, source(e)),
        {
            "requests": charges,
            "list_cost_usd": summed("list_cost_usd"),
            "charge_usd": summed("charge_usd"),
            "flows": summed("flows"),
            "debit": summed("debit"),
        },
    )
    assert keyed(rows, "plan_family", "source") == expected
    if account == "":  # the scenario has every kind of funding
        assert [r["source"] for r in rows if r["plan_family"] == "zenmux"] == [
            "subscription",
            "payg_fallback",
            "payg_choice",
            "unfunded",
        ]


def test_leakage_per_account(clickhouse_client: Client, db: str) -> None:
    rows = run_query(clickhouse_client, "leakage", db=db, start=START, end=END)
    unfunded = [e for e in billed_ledger() if e.funding == "unfunded"]
    assert [r["account_id"] for r in rows] == [LEAK]
    [row] = rows
    assert row["unfunded_requests"] == len(unfunded) == 8
    assert row["list_cost_usd"] == total(unfunded, "list_cost_usd")
    assert row["flows"] == total(unfunded, "flows")
    assert naive(row["first_started_at"]) == naive(min(e.started_at for e in unfunded))
    assert naive(row["last_started_at"]) == naive(max(e.started_at for e in unfunded))


def test_top_accounts(clickhouse_client: Client, db: str) -> None:
    rows = run_query(clickhouse_client, "top_accounts", db=db, start=START, end=END, limit=2)
    by_account = group(
        billed_ledger(),
        lambda e: (e.account_id,),
        {
            "list_cost_usd": summed("list_cost_usd"),
            "charge_usd": summed("charge_usd"),
            "subscription_debit": summed("debit", lambda e: e.funding == "subscription"),
            "payg_usd": summed("charge_usd", lambda e: e.funding == "payg"),
            "unfunded_usd": summed("charge_usd", lambda e: e.funding == "unfunded"),
            "requests": charges,
        },
    )
    ranked = sorted(by_account, key=lambda k: (-by_account[k]["list_cost_usd"], k))[:2]
    assert [(r["account_id"],) for r in rows] == ranked
    for row in rows:
        expected = by_account[(row["account_id"],)]
        assert {c: row[c] for c in expected} == expected


def test_the_time_range_selects_by_started_at(clickhouse_client: Client, db: str) -> None:
    # only the request of December 1st (and nothing of November) falls in December
    rows = run_query(
        clickhouse_client, "cost_by_model", db=db, start="2026-12-01 00:00:00", end=END
    )
    december = [e for e in billed_ledger() if e.started_at.month == 12]
    assert [(r["model"], r["requests"], r["charge_usd"]) for r in rows] == [
        (e.model, 1, e.charge_usd) for e in december
    ]
    assert total(december, "charge_usd") > Decimal(0)
