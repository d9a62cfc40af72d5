"""Window edge cases, funding split and routing, each as given / when / then."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from tests.factories import at, discount, lifecycle, request, started
from tests.unit.billing.conftest import run_scenario

FIVE_H = timedelta(hours=5)


def exhaust_zenmux(start_minute: int = 0, count: int = 200) -> list[dict[str, object]]:
    """Enough GPT-5.2 chats, one a minute, to exhaust a Pro 5h window (cap 50 Flows)."""
    return [request(start=at(start_minute + i)) for i in range(count)]


def test_window_opens_at_first_subscription_request_and_resets_five_hours_later() -> None:
    result = run_scenario([started(), request(start=at(30))])
    entry = result.ledger[0]
    assert entry.window_5h_id == "acct_1/5h/2026-11-02T09:30:00Z"
    state = result.engine.accounts["acct_1"]  # type: ignore[union-attr]
    five = state.windows_of("5h")[0]
    assert five.opened_at == at(30) and five.resets_at == at(30) + FIVE_H


def test_request_exactly_at_reset_opens_the_next_window() -> None:
    first = request(start=at(0))
    on_reset = request(start=at(0) + FIVE_H)
    result = run_scenario([started(), first, on_reset])
    assert result.entry(on_reset["request_id"]).window_5h_id == "acct_1/5h/2026-11-02T14:00:00Z"
    assert result.entry(first["request_id"]).window_5h_id == "acct_1/5h/2026-11-02T09:00:00Z"


def test_request_spanning_a_reset_counts_in_the_window_it_started_in() -> None:
    long = request(start=at(0) + FIVE_H - timedelta(minutes=1), duration=timedelta(minutes=10))
    result = run_scenario([started(), request(start=at(0)), long])
    assert result.entry(long["request_id"]).window_5h_id == "acct_1/5h/2026-11-02T09:00:00Z"


def test_next_window_opens_with_the_next_request_not_at_the_reset() -> None:
    later = request(start=at(0) + FIVE_H + timedelta(hours=2))
    result = run_scenario([started(), request(start=at(0)), later])
    assert result.entry(later["request_id"]).window_5h_id == "acct_1/5h/2026-11-02T16:00:00Z"


def test_straggler_from_a_closed_window_is_debited_to_that_window_and_marked_late() -> None:
    straggler = request(start=at(60))
    result = run_scenario(
        [
            started(),
            request(start=at(0)),
            request(start=at(0) + FIVE_H + timedelta(hours=1)),
            straggler,
        ]
    )
    entry = result.entry(straggler["request_id"])
    assert entry.window_5h_id == "acct_1/5h/2026-11-02T09:00:00Z"
    assert entry.late is True and entry.funding == "subscription"
    state = result.engine.accounts["acct_1"]  # type: ignore[union-attr]
    closed = next(w for w in state.windows if w.window_id == entry.window_5h_id)
    assert closed.consumed == 2 * entry.debit


def test_discount_change_between_start_and_completion_uses_the_start_multiplier() -> None:
    # given Medium supply at the start, Surplus from a minute later
    slow = request(start=at(10), duration=timedelta(minutes=5), model="z-ai/glm-4.7")
    values = [
        started(family="lilac", plan="pro", paid="30"),
        discount("z-ai/glm-4.7", "medium", at(0)),
        discount("z-ai/glm-4.7", "surplus", at(11)),
        slow,
    ]
    entry = run_scenario(values).ledger[0]
    assert entry.supply_state == "medium" and entry.multiplier == Decimal("0.75")
    assert entry.discount_effective_at == at(0)


def test_discount_arriving_after_the_request_started_still_prices_by_effective_time() -> None:
    # the change was effective before the request started but is read after an earlier one
    values = [
        started(family="lilac", plan="pro", paid="30"),
        discount("z-ai/glm-4.7", "high", at(5)),
        discount("z-ai/glm-4.7", "low", at(1)),
        request(start=at(3), model="z-ai/glm-4.7"),
    ]
    entry = run_scenario(values).ledger[0]
    assert entry.supply_state == "low" and entry.multiplier == Decimal("1.00")


def test_exhaustion_charges_the_crossing_request_in_full_and_records_overshoot() -> None:
    result = run_scenario([started(), *exhaust_zenmux()])
    crossing = next(e for e in result.ledger if e.overshoot > 0)
    exhausted = result.quota[0]
    assert exhausted.type == "exhausted" and exhausted.at == crossing.completed_at
    assert crossing.funding == "subscription"
    assert exhausted.consumed - exhausted.cap == crossing.overshoot


def test_requests_started_after_exhaustion_go_to_fallback_key_when_enabled() -> None:
    fallback = lifecycle(
        "fallback_configured", when=at(-5), enabled=True, fallback_key_id="key_payg"
    )
    result = run_scenario([started(), fallback, *exhaust_zenmux()])
    after = [e for e in result.ledger if e.started_at >= result.quota[0].at]
    assert after and all(e.funding == "payg" and e.fallback_key_id == "key_payg" for e in after)
    assert all(e.debit == 0 for e in after)
    assert [r.route for r in result.routing] == ["subscription", "fallback"]
    assert result.routing[-1].until == at(0) + FIVE_H


def test_without_fallback_requests_after_exhaustion_are_unfunded_and_route_is_blocked() -> None:
    result = run_scenario([started(), *exhaust_zenmux()])
    after = [e for e in result.ledger if e.started_at >= result.quota[0].at]
    assert after and all(e.funding == "unfunded" for e in after)
    assert result.routing[-1].route == "blocked" and result.routing[-1].until == at(0) + FIVE_H


def test_in_flight_request_started_before_exhaustion_is_still_subscription_funded() -> None:
    chats = exhaust_zenmux(count=189)
    in_flight = request(
        start=at(150), duration=timedelta(minutes=60)
    )  # completes after the crossing
    result = run_scenario([started(), *chats, in_flight])
    entry = result.entry(in_flight["request_id"])
    assert result.quota and entry.started_at < result.quota[0].at
    assert entry.funding == "subscription" and entry.overshoot == entry.debit


def test_reset_restores_without_further_traffic_and_routes_back_to_subscription() -> None:
    # the final tick of the log is at the last event's time; a later event of another account
    # moves the log's clock past the reset
    other = [started("acct_2"), request("acct_2", start=at(hours=6))]
    result = run_scenario([started(), *exhaust_zenmux(), *other])
    restored = [q for q in result.quota if q.type == "restored"]
    assert len(restored) == 1 and restored[0].reason == "reset" and restored[0].at == at(0) + FIVE_H
    acct_1 = [r for r in result.routing if r.account_id == "acct_1"]
    assert [r.route for r in acct_1] == ["subscription", "blocked", "subscription"]
    assert [r.seq for r in acct_1] == [1, 2, 3]


def million_sonnet_tokens(start: datetime) -> dict[str, object]:
    """A request worth exactly $3.00 at list: 1M Claude Sonnet 4.5 input tokens."""
    return request(
        start=start, model="anthropic/claude-sonnet-4.5", input_tokens=1_000_000, output_tokens=0
    )


def test_lilac_five_hour_cap_is_a_quarter_of_included_usage() -> None:
    # Basic: $20 included → 5h cap $5; Sonnet 4.5 at $3/M input: 2 requests of 1M cross it
    values = [started(family="lilac", plan="basic", paid="10")]
    values += [million_sonnet_tokens(at(i)) for i in range(3)]
    result = run_scenario(values)
    assert result.quota[0].cap == Decimal("5") and result.quota[0].window_kind == "5h"
    assert [e.funding for e in result.ledger] == ["subscription", "subscription", "unfunded"]


def test_upgrade_that_raises_the_cap_restores_an_exhausted_window_at_once() -> None:
    values = [started(family="lilac", plan="basic", paid="10")]
    values += [million_sonnet_tokens(at(i)) for i in range(2)]
    values += [lifecycle("upgraded", when=at(30), plan="max", paid_usd="90")]
    after = million_sonnet_tokens(at(31))
    result = run_scenario([*values, after])
    restored = [q for q in result.quota if q.type == "restored"]
    assert restored and restored[0].reason == "upgrade" and restored[0].at == at(30)
    assert result.entry(after["request_id"]).funding == "subscription"
    assert [r.route for r in result.routing] == ["subscription", "blocked", "subscription"]


def test_downgrade_applies_at_the_next_renewal_only() -> None:
    values = [
        started(family="lilac", plan="pro", paid="30", when=at(-60), period_days=30),
        lifecycle("downgrade_scheduled", when=at(0), plan="basic"),
        request(start=at(10), model="z-ai/glm-4.7"),
        lifecycle(
            "renewed",
            when=at(-60, days=30),
            period_start=at(-60, days=30),
            period_end=at(-60, days=60),
            paid_usd="10",
        ),
        request(start=at(days=31), model="z-ai/glm-4.7"),
    ]
    result = run_scenario(values)
    assert [e.plan for e in result.ledger] == ["pro", "basic"]
    state = result.engine.accounts["acct_1"]  # type: ignore[union-attr]
    assert state.windows_of("period")[-1].cap == Decimal("20")


def test_canceled_subscription_stops_subscription_funding() -> None:
    values = [
        started(),
        lifecycle("fallback_configured", when=at(-5), enabled=True, fallback_key_id="key_payg"),
        lifecycle("canceled", when=at(10)),
        request(start=at(20)),
    ]
    result = run_scenario(values)
    assert result.ledger[0].funding == "payg"
    assert result.routing[-1].route == "fallback" and result.routing[-1].reason == "canceled"


def test_payg_requests_bill_at_list_and_debit_no_window() -> None:
    values = [
        started(family="lilac", plan="pro", paid="30"),
        discount("z-ai/glm-4.7", "surplus", at(0)),
    ]
    entry = run_scenario([*values, request(start=at(5), model="z-ai/glm-4.7", mode="payg")]).ledger[
        0
    ]
    assert (
        entry.funding == "payg"
        and entry.multiplier == 1
        and entry.charge_usd == entry.list_cost_usd
    )
    assert entry.debit == 0 and entry.window_5h_id is None


def test_non_ok_requests_pay_only_for_reported_tokens() -> None:
    values = [started()]
    image = request(
        start=at(1),
        model="nanobanana/nanobanana-pro",
        input_tokens=100,
        output_tokens=0,
        images=1,
        status="error",
    )
    entry = run_scenario([*values, image]).ledger[0]
    assert entry.list_cost_usd == Decimal("0.0002")


def test_plan_names_are_matched_whatever_their_case() -> None:
    result = run_scenario([started(plan="Pro"), request(start=at(1))])
    assert result.ledger[0].plan == "pro" and not result.dead


def test_studio_and_api_share_one_quota_pool() -> None:
    values = [
        started(),
        request(start=at(1), channel="studio"),
        request(start=at(2), channel="api"),
    ]
    result = run_scenario(values)
    assert result.ledger[0].window_5h_id == result.ledger[1].window_5h_id
