"""The hand-written copies of the per-record hot path equal ``dataclasses.replace``.

``AccountState.with_clocks``/``with_windows`` and ``Window.with_consumed`` spell out every
field for speed; a field added to the class later and forgotten there would silently fall
back to its default. Every field is given a non-default value here, so that cannot pass.
Likewise ``ChargeMemo.of`` reads an entry's fields by the memo's names, and a copy never
carries the deadline an ``AccountState`` remembers.
"""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from billing.account import AccountState, PublishedRoute
from billing.catalog import Catalog
from billing.dedup import ChargeMemo
from billing.engine import Engine
from billing.replay import Replay
from billing.subscription import FallbackSetting, Term
from billing.windows import Exhaustion, Window
from metering.replay.logfile import LogRecord, read_log
from schemas.ledger import LedgerEntry

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
WALKTHROUGH = Path(__file__).resolve().parents[3] / "docs/examples/walkthrough.log.jsonl"


def a_window() -> Window:
    return Window(
        kind="5h",
        window_id="acct_1/5h/2026-11-02T09:00:00Z",
        opened_at=T0,
        resets_at=T0 + timedelta(hours=5),
        cap=Decimal("50"),
        consumed=Decimal("12.5"),
        exhaustions=(Exhaustion(T0 + timedelta(hours=1), T0 + timedelta(hours=2)),),
    )


def a_state() -> AccountState:
    return AccountState(
        account_id="acct_1",
        family="zenmux",
        terms=(Term(T0, T0 + timedelta(days=30), Decimal("20"), ((T0, "pro"),)),),
        scheduled_plan="free",
        fallback=(FallbackSetting(T0, True, "key_payg"),),
        windows=(a_window(),),
        route=PublishedRoute("subscription", None, None, 3),
        event_clock=T0 + timedelta(minutes=1),
        now=T0 + timedelta(minutes=2),
    )


def test_every_field_of_the_samples_differs_from_its_default() -> None:
    for sample in (a_state(), a_window()):
        for f in fields(sample):
            if f.init:  # not a memo (``AccountState.next_deadline``), which no copy carries
                assert getattr(sample, f.name) != f.default, f.name


def test_with_clocks_is_replace_of_the_two_clocks() -> None:
    state = a_state()
    later = T0 + timedelta(hours=3)
    assert state.with_clocks(later, later - timedelta(seconds=1)) == replace(
        state, now=later, event_clock=later - timedelta(seconds=1)
    )


def test_with_windows_is_replace_of_the_windows() -> None:
    state = a_state()
    windows = (a_window(), replace(a_window(), kind="7d", window_id="w7"))
    assert state.with_windows(windows) == replace(state, windows=windows)


def test_with_consumed_is_replace_of_consumed() -> None:
    window = a_window()
    assert window.with_consumed(Decimal("49.9")) == replace(window, consumed=Decimal("49.9"))


def test_a_copy_does_not_carry_the_remembered_deadline() -> None:
    state = a_state()
    assert state.next_deadline() == T0 + timedelta(days=30)  # the term's end
    later = T0 + timedelta(days=31)
    assert state.with_clocks(later, later).next_deadline() is None
    assert replace(state, now=later).next_deadline() is None


def test_a_charge_memo_holds_the_entry_fields_of_its_names(catalog: Catalog) -> None:
    # given every charge of the walkthrough (subscription-funded and not)
    with WALKTHROUGH.open("rb") as stream:
        records = [r for r in read_log(stream) if isinstance(r, LogRecord)]
    engine = Engine(catalog, accounts={}, seen={}, discounts={})
    outputs = list(Replay(engine).run((r.source, r.payload, r.key) for r in records))
    entries = [o.value for o in outputs if isinstance(o.value, LedgerEntry)]
    assert {e.funding for e in entries} >= {"subscription", "payg"}
    for entry in entries:
        # then its memo is the entry's fields read one by one
        memo = ChargeMemo.of(entry, Decimal("1.5"))
        shared = {name: getattr(entry, name) for name in ChargeMemo._fields[:12]}
        assert memo == ChargeMemo(
            **shared,
            unit=entry.unit if entry.funding == "subscription" else "usd",
            amount=Decimal("1.5"),
            adjusted=Decimal(0),
            window_ids=(entry.window_5h_id, entry.window_7d_id, entry.period_id),
        )
