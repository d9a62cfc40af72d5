"""Discount changes interleaved with the requests they govern, on a real broker: each request
pays the multiplier of the change published just before it, as the offline replay charges it
(``streams.discount_fence``). The two topics are consumed independently, so without the fence
a request could be folded before its change."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from schemas import topics
from tests.e2e.conftest import collect, publish
from tests.factories import at, discount, request, started
from tests.unit.billing.conftest import run_scenario

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

MODEL = "z-ai/glm-4.7"
STATES = ("low", "medium", "high", "surplus")
CHANGES = 24


def test_each_request_pays_the_change_published_just_before_it(
    worker: Any, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    # given a Lilac account, then changes of the model's supply state every 10 minutes (of
    # the log's clock), each followed at once by a request that started after it
    setup = [started("acct_lil", family="lilac", plan="max", paid="100", when=at(-60))]
    traffic: list[dict[str, Any] | bytes] = []
    for n in range(CHANGES):
        traffic.append(discount(MODEL, STATES[n % len(STATES)], at(10 * n)))
        traffic.append(
            request("acct_lil", start=at(10 * n + 1), model=MODEL, request_id=f"r{n}",
                    input_tokens=1000, output_tokens=100)
        )  # fmt: skip
    expected = run_scenario([*setup, *traffic])
    assert {e.supply_state for e in expected.ledger} == set(STATES)
    prefix = kafka_topic_prefix
    asyncio.run(publish(kafka_bootstrap, prefix, setup))
    asyncio.run(collect(kafka_bootstrap, prefix + topics.ROUTING, 1, timeout=60))

    # when they are published in that order
    asyncio.run(publish(kafka_bootstrap, prefix, traffic))

    # then each request pays its change's multiplier
    ledger = asyncio.run(
        collect(kafka_bootstrap, prefix + topics.LEDGER, CHANGES, distinct="entry_id")
    )
    charged = {e["request_id"]: (e["supply_state"], Decimal(e["multiplier"])) for e in ledger}
    assert charged == {e.request_id: (e.supply_state, e.multiplier) for e in expected.ledger}
