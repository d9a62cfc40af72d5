"""Fault injection honours its rates, is decided by the seed, and never alters the traffic."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest
from pydantic import ValidationError

from billing.catalog import Catalog
from schemas import topics
from schemas.requests import GatewayRequest
from schemas.topics import CONTRACTS
from simulator import Delivery, SimulationConfig, deliveries, generate

RATES = {"duplicate_rate": 0.05, "straggler_rate": 0.03, "malformed_rate": 0.02}
FAULT_OF = {
    "duplicate_rate": "duplicate",
    "straggler_rate": "straggler",
    "malformed_rate": "malformed",
}


@pytest.fixture(scope="module")
def busy() -> SimulationConfig:
    """≈ 10,000 requests (limits off, so the count is the offered rate × duration)."""
    return SimulationConfig(seed=5, accounts=100, rate=10.0, duration=1000, plan_limits=False)


@pytest.fixture(scope="module")
def faulty(busy: SimulationConfig, catalog: Catalog) -> list[Delivery]:
    return list(deliveries(replace(busy, **RATES), catalog))


def request_count(items: list[Delivery]) -> int:
    return sum(1 for d in items if isinstance(d.value, GatewayRequest) and d.fault != "duplicate")


@pytest.mark.parametrize("rate_name", sorted(RATES))
def test_each_rate_is_roughly_honoured_at_10k_requests(
    rate_name: str, faulty: list[Delivery]
) -> None:
    requests = request_count(faulty)
    assert 9_000 < requests < 11_000
    injected = sum(1 for d in faulty if d.fault == FAULT_OF[rate_name])
    # binomial: the standard deviation at these sizes is ≈ 10-20 events; ±20% is > 4 sd
    assert injected == pytest.approx(RATES[rate_name] * requests, rel=0.2)


def test_zero_rates_inject_nothing_and_deliver_the_events_as_they_are(
    busy: SimulationConfig, catalog: Catalog
) -> None:
    clean = list(generate(busy, catalog))
    delivered = list(deliveries(busy, catalog))
    assert all(d.fault is None for d in delivered)
    assert [(d.at, d.value) for d in delivered] == clean


def test_faults_never_change_the_traffic_itself(
    busy: SimulationConfig, faulty: list[Delivery], catalog: Catalog
) -> None:
    # the faulty run carries exactly the clean run's events, once each without the copies
    clean = Counter(e.model_dump_json() for _, e in generate(busy, catalog))
    originals = Counter(d.payload().decode() for d in faulty if d.fault in (None, "straggler"))
    assert originals == clean


def test_a_duplicate_is_the_same_bytes_right_behind_its_original(faulty: list[Delivery]) -> None:
    for index, item in enumerate(faulty):
        if item.fault == "duplicate":
            original = faulty[index - 1]
            assert original.fault in (None, "straggler")
            assert original.payload() == item.payload()
            assert (original.topic, original.key, original.at) == (item.topic, item.key, item.at)


def test_a_straggler_arrives_minutes_late_with_its_own_times(faulty: list[Delivery]) -> None:
    stragglers = [d for d in faulty if d.fault == "straggler"]
    assert stragglers
    for item in stragglers:
        assert isinstance(item.value, GatewayRequest)
        delay = item.at - item.value.completed_at
        assert timedelta(minutes=1) <= delay <= timedelta(minutes=15)


def test_a_malformed_payload_fails_the_request_contract(faulty: list[Delivery]) -> None:
    broken = [d for d in faulty if d.fault == "malformed"]
    kinds = Counter()
    for item in broken:
        assert isinstance(item.value, bytes)
        assert item.topic == topics.REQUESTS
        assert b"\n" not in item.value
        with pytest.raises(ValidationError) as caught:
            CONTRACTS[topics.REQUESTS].validate_json(item.value)
        kinds["json_invalid" if "json_invalid" in str(caught.value) else "missing"] += 1
    # both kinds of damage occur: cut-short JSON, and a required field missing
    assert kinds["json_invalid"] > 0
    assert kinds["missing"] > 0


def test_one_rate_does_not_move_another_faults_choices(
    busy: SimulationConfig, catalog: Catalog
) -> None:
    def duplicated(config: SimulationConfig) -> set[str]:
        return {
            d.value.request_id
            for d in deliveries(config, catalog)
            if d.fault == "duplicate" and isinstance(d.value, GatewayRequest)
        }

    short = replace(busy, duration=200)
    alone = duplicated(replace(short, duplicate_rate=0.05))
    with_others = duplicated(
        replace(short, duplicate_rate=0.05, straggler_rate=0.2, malformed_rate=0.2)
    )
    assert alone
    assert alone == with_others
