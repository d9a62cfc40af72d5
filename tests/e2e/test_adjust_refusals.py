"""``metering adjust`` refuses what the core would refuse, in one line, before publishing: an
entry ClickHouse does not hold, an adjustment entry, a charge already fully reversed, more
than what is left; a retry of an adjustment already applied publishes nothing again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from clickhouse_connect.driver.client import Client

from billing.charging import charge_entry_id
from billing.corrections import adjustment_entry_id
from metering.corrections import (
    AdjustmentIdReused,
    Decision,
    FullyReversed,
    NotACharge,
    OverRemainder,
    UnknownEntry,
    issue_adjustment,
    parse_amount,
    remainder,
)
from metering.corrections.remainder import show
from metering.errors import InputError
from metering.sink.writer import ClickHouseLedgerStore
from metering.warehouse import migrate
from schemas.adjustments import Adjustment
from schemas.ledger import LedgerEntry
from tests.factories import adjustment, at
from tests.integration.ledger_pipeline import LEAK, LIL, ZEN, scenario
from tests.unit.billing.conftest import run_scenario

TINY = Decimal("0.000000000001")  # the ledger's last decimal place
AT = at(hours=10)
LOG = scenario()  # one log: each call of scenario() numbers its requests anew
LEDGER = run_scenario(LOG).ledger


def charge(account: str, funding: str) -> LedgerEntry:
    """The first charge of ``account`` funded by ``funding`` in the billed scenario."""
    return next(
        e for e in LEDGER if e.account_id == account and e.kind == "charge" and e.funding == funding
    )


def rows_of(entries: list[LedgerEntry], entry_id: str) -> list[LedgerEntry]:
    return [e for e in entries if entry_id in (e.entry_id, e.adjusts_entry_id)]


@pytest.mark.parametrize(
    ("account", "funding"),
    [(ZEN, "subscription"), (LIL, "subscription"), (ZEN, "payg"), (LEAK, "unfunded")],
)
def test_what_is_left_is_exactly_what_the_core_lets_an_adjustment_give_back(
    account: str, funding: str
) -> None:
    # given a charge of each kind of funding, and what this module says is left of it
    original = charge(account, funding)
    left = remainder(original.entry_id, rows_of(LEDGER, original.entry_id)).left
    assert left > 0

    def core_accepts(amount: Decimal) -> bool:
        fix = adjustment(original.entry_id, str(amount), account=account, when=AT)
        run = run_scenario([*LOG, fix])
        return any(e.adjusts_entry_id == original.entry_id for e in run.ledger[-1:])

    # then the core takes exactly that much back, and not one unit of the last decimal more
    assert core_accepts(left)
    assert not core_accepts(left + TINY)


@pytest.fixture
def store(clickhouse_client: Client, clickhouse_database: str) -> Iterator[ClickHouseLedgerStore]:
    """ClickHouse holding the billed scenario (a Lilac charge already partly refunded)."""
    migrate(clickhouse_client, database=clickhouse_database)
    ledger = ClickHouseLedgerStore(clickhouse_client, clickhouse_database)
    ledger.insert(LEDGER, token="scenario")
    yield ledger


def never_publish(event: Adjustment) -> None:
    raise AssertionError(f"a refused adjustment was published: {event}")


def adjust(
    store: ClickHouseLedgerStore,
    entry_id: str,
    amount: str,
    publish: Callable[[Adjustment], object] = never_publish,
    **more: str,
) -> Decision:
    return issue_adjustment(
        store,
        publish,
        entry_id=entry_id,
        amount=parse_amount(amount),
        reason=more.get("reason", "goodwill credit"),
        adjustment_id=more.get("adjustment_id", "adj_test"),
        at=datetime(2026, 11, 2, 20, 0, tzinfo=UTC),
    )


@pytest.mark.integration
def test_an_unknown_entry_is_refused_saying_a_new_one_may_not_be_stored_yet(
    store: ClickHouseLedgerStore,
) -> None:
    with pytest.raises(UnknownEntry) as refusal:
        adjust(store, "ch_nope", "1")
    assert str(refusal.value).startswith("no ledger entry ch_nope in ClickHouse")
    assert "may not be stored yet" in str(refusal.value)


@pytest.mark.integration
def test_an_adjustment_entry_is_refused(store: ClickHouseLedgerStore) -> None:
    refund = next(e for e in LEDGER if e.kind == "adjustment")
    with pytest.raises(NotACharge, match=f"entry {refund.entry_id} is itself an adjustment"):
        adjust(store, refund.entry_id, "0.001")


@pytest.mark.integration
def test_more_than_what_is_left_is_refused_and_exactly_what_is_left_is_published(
    store: ClickHouseLedgerStore,
) -> None:
    # given a Lilac charge the scenario already refunded 0.001 USD of
    refunded = charge_entry_id(LIL, "lil_1")
    stored = next(e for e in LEDGER if e.entry_id == refunded)
    left = stored.debit - Decimal("0.001")
    # when more than the rest is asked, it is refused naming what is left
    with pytest.raises(OverRemainder) as refusal:
        adjust(store, refunded, str(left + TINY))
    assert str(refusal.value) == (
        f"amount {show(left + TINY)} exceeds the {show(left)} usd left on {refunded} "
        f"(charged {show(stored.debit)}, given back 0.001)"
    )
    # and exactly the rest is published, once, with the id of its future entry
    sent: list[Adjustment] = []
    decision = adjust(store, refunded, str(left), publish=sent.append)
    assert [(a.entry_id, a.account_id, a.amount) for a in sent] == [(refunded, LIL, left)]
    assert decision.entry_id == adjustment_entry_id(LIL, "adj_test")
    assert (decision.remainder.unit, decision.remainder.left) == ("usd", left)


@pytest.mark.integration
def test_a_fully_reversed_charge_is_refused_and_a_retry_publishes_nothing(
    store: ClickHouseLedgerStore,
) -> None:
    # given a ZenMux charge fully reversed by an adjustment the pipeline already stored
    original = charge(ZEN, "subscription")
    reversal = adjustment(
        original.entry_id, str(original.debit), account=ZEN, when=at(hours=10),
        adjustment_id="adj_full",
    )  # fmt: skip
    reversal["reason"] = "goodwill credit"
    run = run_scenario([*LOG, reversal])
    store.insert([run.ledger[-1]], token="reversal")
    assert run.ledger[-1].adjusts_entry_id == original.entry_id

    # when another adjustment of it is asked, it is refused
    with pytest.raises(FullyReversed) as refusal:
        adjust(store, original.entry_id, "0.1", adjustment_id="adj_more")
    assert str(refusal.value) == (
        f"entry {original.entry_id} is already fully reversed "
        f"({show(original.debit)} of {show(original.debit)} flows given back)"
    )
    # but the very same adjustment again (a retry) is recognised and not published again
    retry = issue_adjustment(
        store,
        never_publish,
        entry_id=original.entry_id,
        amount=original.debit,
        reason="goodwill credit",
        adjustment_id="adj_full",
        at=at(hours=10),
    )
    assert retry.applied and retry.entry_id == run.ledger[-1].entry_id
    # and its id reused for something else is refused
    with pytest.raises(AdjustmentIdReused, match="adjustment id adj_full already gave back"):
        adjust(store, original.entry_id, "0.1", adjustment_id="adj_full")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("abc", "is not a decimal number"),
        ("0", "must be a positive decimal number"),
        ("-1", "must be a positive decimal number"),
        ("NaN", "must be a positive decimal number"),
        ("0.0000000000001", "more than 12 fractional digits"),
    ],
)
def test_an_amount_that_is_not_a_positive_exact_decimal_is_refused(text: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        parse_amount(text)


def test_an_amount_is_parsed_exactly() -> None:
    assert parse_amount(" 0.1 ") == Decimal("0.1")
    assert parse_amount("0.000000000001") == TINY
