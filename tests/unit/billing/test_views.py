"""The read-only views: Lilac's /status shape and an account's usage."""

from __future__ import annotations

from datetime import timedelta

from billing.views import account_usage, supply_status
from tests.factories import at, discount, request, started
from tests.unit.billing.conftest import run_scenario


def test_status_reports_each_models_live_discount_in_the_lilac_shape() -> None:
    run = run_scenario(
        [discount("z-ai/glm-4.7", "surplus", at(0)), discount("openai/gpt-5.2", "medium", at(5))]
    )
    assert run.engine is not None
    status = supply_status(run.engine.catalog.latest, run.engine.discounts, at(10))
    glm = status["models"]["z-ai/glm-4.7"]
    assert glm == {
        "current_subscription_supply_state": "surplus",
        "current_subscription_discount_percent": "75",
        "current_subscription_credit_multiplier": "0.25",
    }
    assert (
        status["models"]["anthropic/claude-sonnet-4.5"]["current_subscription_supply_state"]
        == "low"
    )
    assert status["current_subscription_supply_updated_at"] == "2026-11-02T09:05:00Z"
    earlier = supply_status(run.engine.catalog.latest, run.engine.discounts, at(1))
    assert earlier["models"]["openai/gpt-5.2"]["current_subscription_supply_state"] == "low"


def test_usage_shows_consumed_cap_remaining_and_route() -> None:
    run = run_scenario(
        [
            started(family="lilac", plan="basic", paid="10"),
            request(
                start=at(1),
                model="anthropic/claude-sonnet-4.5",
                input_tokens=1_000_000,
                output_tokens=0,
            ),
        ]
    )
    assert run.engine is not None
    usage = account_usage(run.engine.accounts["acct_1"], at(2))
    five = next(w for w in usage["windows"] if w["kind"] == "5h")
    assert (five["consumed"], five["cap"], five["remaining"]) == (
        "3.000000000000",
        "5.000000000000",
        "2.000000000000",
    )
    assert five["resets_at"] == "2026-11-02T14:01:00Z" and usage["route"]["route"] == "subscription"
    later = account_usage(run.engine.accounts["acct_1"], at(1) + timedelta(hours=5))
    assert sorted(w["kind"] for w in later["windows"]) == ["7d", "period"]
