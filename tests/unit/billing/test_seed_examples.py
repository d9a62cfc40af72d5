"""The plan documents' own worked examples, each as a named test."""

from __future__ import annotations

from decimal import Decimal

from billing.catalog import Catalog
from billing.pricing import discounted_usd, flows, list_cost_usd
from schemas.requests import Usage
from tests.factories import at, discount, lifecycle, request, started
from tests.unit.billing.conftest import run_scenario


def within(value: Decimal, target: Decimal, tolerance: str = "0.10") -> bool:
    return abs(value - target) <= target * Decimal(tolerance)


def test_lilac_glm_request_worth_one_dollar_at_75_percent_off_uses_25_cents(
    catalog: Catalog,
) -> None:
    # given a request whose list cost is exactly $1.00 on GLM 4.7 ($0.60/M input, $2.20/M output)
    # and GLM in Surplus supply (75% off) for subscriptions
    one_dollar = request(
        start=at(10), model="z-ai/glm-4.7", input_tokens=1_000_000, output_tokens=181_818
    )
    values = [
        started(family="lilac", plan="max", paid="100"),
        discount("z-ai/glm-4.7", "surplus", at(0)),
        one_dollar,
    ]
    # when it is charged
    entry = run_scenario(values).ledger[0]
    # then the list cost is $1.00 (to the cent) and the subscription pays a quarter of it
    assert entry.list_cost_usd.quantize(Decimal("0.01")) == Decimal("1.00")
    assert entry.multiplier == Decimal("0.25")
    assert entry.supply_state == "surplus"
    assert entry.charge_usd == discounted_usd(entry.list_cost_usd, Decimal("0.25"))
    assert entry.charge_usd.quantize(Decimal("0.01")) == Decimal("0.25")
    assert entry.debit == entry.charge_usd
    assert discounted_usd(Decimal("1.00"), Decimal("0.25")) == Decimal("0.25")


def test_lilac_basic_upgraded_to_pro_mid_period_gets_2_5_times_30_minus_spent() -> None:
    # given Basic ($10 → $20 included) with $6 spent at list (Low supply)
    spend = [
        request(
            start=at(i),
            model="anthropic/claude-sonnet-4.5",
            input_tokens=1_000_000,
            output_tokens=0,
        )
        for i in range(2)
    ]  # 2 × $3.00 = $6.00
    upgrade = lifecycle("upgraded", when=at(days=15), plan="pro", paid_usd="20")
    after = request(start=at(days=15, minutes=1), model="anthropic/claude-sonnet-4.5")
    # when the account upgrades to Pro for $20 more and uses it
    result = run_scenario(
        [started(family="lilac", plan="basic", paid="10"), *spend, upgrade, after]
    )
    # then included usage is 2.5 × $30 = $75 and what is left is $75 − $6 spent
    period = next(e for e in result.ledger if e.request_id == after["request_id"])
    state = result.engine.accounts["acct_1"]  # type: ignore[union-attr]
    window = next(w for w in state.windows if w.window_id == period.period_id)
    assert window.cap == Decimal("75")
    spent = sum(e.debit for e in result.ledger)
    assert window.cap - window.consumed == Decimal("75") - spent
    assert spent - period.debit == Decimal("6")


def test_zenmux_pro_50_flows_is_about_200_chats_or_30_images(catalog: Catalog) -> None:
    version = catalog.latest
    chat = list_cost_usd(
        version.models["openai/gpt-5.2"], Usage(input_tokens=5000, output_tokens=1000), "ok"
    )
    image = list_cost_usd(
        version.models["nanobanana/nanobanana-pro"],
        Usage(input_tokens=0, output_tokens=0, images=1),
        "ok",
    )
    per_chat = flows(chat, version.zenmux.flow, "ok")
    per_image = flows(image, version.zenmux.flow, "ok")
    cap = version.zenmux.plans["pro"].caps.five_hour
    assert cap == Decimal("50")
    assert within(per_chat, Decimal("0.25")), per_chat
    assert within(per_image, Decimal("1.67"), "0.10"), per_image
    assert within(cap / per_chat, Decimal("200")), cap / per_chat
    assert within(cap / per_image, Decimal("30")), cap / per_image


def test_zenmux_pro_window_exhausts_after_about_200_chats() -> None:
    chats = [request(start=at(minutes=i)) for i in range(230)]
    result = run_scenario([started(), *chats])
    funded = [e for e in result.ledger if e.funding == "subscription"]
    assert 180 <= len(funded) <= 220
    assert result.quota[0].type == "exhausted" and result.quota[0].window_kind == "5h"
