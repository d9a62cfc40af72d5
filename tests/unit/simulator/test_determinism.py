"""The generator is a pure function of (seed, config, start): same inputs, same events; every
event is a valid contract record, in time order, and the traffic has the seeds' shape."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from statistics import mean

import pytest

from billing.catalog import Catalog
from billing.pricing import flows, list_cost_usd
from schemas.requests import GatewayRequest
from schemas.subscriptions import FallbackConfigured, SubscriptionStarted
from schemas.topics import CONTRACTS
from simulator import SimulationConfig, Traffic, deliveries, generate
from simulator.events import Event, event_time, topic_of
from simulator.profiles import CHAT, CODING, IMAGE, Profile, Shape


def serialized(events: list[tuple[datetime, Event]]) -> list[str]:
    return [f"{at.isoformat()} {topic_of(e)} {e.model_dump_json()}" for at, e in events]


def requests_of(events: list[tuple[datetime, Event]]) -> list[GatewayRequest]:
    return [e for _, e in events if isinstance(e, GatewayRequest)]


def test_the_same_seed_and_config_give_the_same_stream_byte_for_byte(
    small: SimulationConfig, catalog: Catalog
) -> None:
    # given one config, when the stream is generated twice
    first = serialized(list(generate(small, catalog)))
    second = serialized(list(generate(small, catalog)))
    # then both are identical, and not trivially small
    assert first == second
    assert len(first) > 500


def test_another_seed_gives_another_stream(small: SimulationConfig, catalog: Catalog) -> None:
    one = serialized(list(generate(small, catalog)))
    other = serialized(list(generate(replace(small, seed=small.seed + 1), catalog)))
    assert one != other


def test_the_stream_with_faults_is_deterministic_too(
    small: SimulationConfig, catalog: Catalog
) -> None:
    faulty = replace(small, duplicate_rate=0.05, straggler_rate=0.05, malformed_rate=0.05)
    runs = [[(d.at, d.topic, d.key, d.payload(), d.fault) for d in deliveries(faulty, catalog)]]
    runs.append([(d.at, d.topic, d.key, d.payload(), d.fault) for d in deliveries(faulty, catalog)])
    assert runs[0] == runs[1]


def test_events_come_in_non_decreasing_time(small: SimulationConfig, catalog: Catalog) -> None:
    events = list(generate(small, catalog))
    times = [at for at, _ in events]
    assert times == sorted(times)
    # and each ``at`` is the event's own time (a request's completion, a change's instant)
    assert all(at == event_time(event) for at, event in events)


def test_only_injected_stragglers_arrive_out_of_time_order(
    small: SimulationConfig, catalog: Catalog
) -> None:
    # given a run with every fault injected
    faulty = replace(small, duplicate_rate=0.05, straggler_rate=0.05, malformed_rate=0.05)
    items = list(deliveries(faulty, catalog))
    # then delivery times never go back
    assert [d.at for d in items] == sorted(d.at for d in items)
    # and event times go back only at stragglers (and the copies that travel with them)
    late = {
        d.value.request_id
        for d in items
        if isinstance(d.value, GatewayRequest) and d.fault == "straggler"
    }
    latest = None
    went_back = set()
    for item in items:
        if isinstance(item.value, bytes):
            continue
        moment = event_time(item.value)
        if latest is not None and moment < latest:
            went_back.add(item.value.request_id if isinstance(item.value, GatewayRequest) else "?")
        if getattr(item.value, "request_id", None) not in late:
            latest = moment if latest is None else max(latest, moment)
    assert went_back
    assert went_back <= late


def test_every_event_validates_against_its_topic_contract(
    small: SimulationConfig, catalog: Catalog
) -> None:
    for _, event in generate(small, catalog):
        payload = event.model_dump_json()
        assert CONTRACTS[topic_of(event)].validate_json(payload) == event


def test_request_ids_are_unique_and_carry_the_run_tag(
    small: SimulationConfig, catalog: Catalog
) -> None:
    ids = [r.request_id for r in requests_of(list(generate(small, catalog)))]
    assert len(ids) == len(set(ids))
    assert all(i.startswith(f"req_{small.tag}_") for i in ids)


def test_each_account_starts_its_subscription_before_anything_else(
    small: SimulationConfig, catalog: Catalog
) -> None:
    first: dict[str, Event] = {}
    first_request: dict[str, GatewayRequest] = {}
    for _, event in generate(small, catalog):
        account = getattr(event, "account_id", None)
        if account is None:
            continue
        first.setdefault(account, event)
        if isinstance(event, GatewayRequest):
            first_request.setdefault(account, event)
    assert len(first) == small.accounts
    assert all(isinstance(e, SubscriptionStarted) for e in first.values())
    for account, request in first_request.items():
        started = first[account]
        assert isinstance(started, SubscriptionStarted)
        assert started.at <= request.started_at < started.period_end


def test_every_catalog_plan_has_accounts_in_proportion(catalog: Catalog) -> None:
    # given 70 accounts, half on each family
    traffic = Traffic(SimulationConfig(accounts=70), catalog)
    # then the seven catalog plans each have several accounts
    plans = Counter((a.family, a.plan) for a in traffic.accounts)
    version = traffic.book.version
    expected = {("zenmux", p) for p in version.zenmux.plans} | {
        ("lilac", p) for p in version.lilac.plans
    }
    assert set(plans) == expected
    assert len(expected) == 7
    assert min(plans.values()) >= 3
    # and the started events say the same
    started = Counter(
        (e.plan_family, e.plan)
        for _, e in Traffic(SimulationConfig(accounts=70), catalog).events()
        if isinstance(e, SubscriptionStarted)
    )
    assert started == plans


def test_a_few_accounts_are_busy_within_what_their_plans_sustain(catalog: Catalog) -> None:
    # given the skewed spread alone (no plan limits)
    config = SimulationConfig(accounts=100, rate=2.0, duration=3600, plan_limits=False)
    per_account = Counter(r.account_id for r in requests_of(list(generate(config, catalog))))
    # then the busiest 10% of accounts send over a third of the requests
    busiest = sum(count for _, count in per_account.most_common(10))
    assert busiest > 0.35 * sum(per_account.values())
    # and with plan limits, nobody is offered more than its plan sustains, the rest is
    # spread over quieter accounts, and the total rate is kept
    limited = Traffic(replace(config, rate=0.5, plan_limits=True), catalog)
    rates = limited.rates()
    assert sum(rates) == pytest.approx(0.5)
    assert max(rates) < 0.5 * 10 / 100  # under 10x the average


def test_requests_only_use_models_their_plan_allows_at_their_start(
    small: SimulationConfig, catalog: Catalog
) -> None:
    traffic = Traffic(small, catalog)
    by_id = {a.account_id: (a, t) for a, t in zip(traffic.accounts, traffic.timelines, strict=True)}
    for request in requests_of(list(traffic.events())):
        account, timeline = by_id[request.account_id]
        plan = timeline.plan_at(request.started_at)
        assert plan is not None
        assert traffic.book.allows(account.family, plan, request.model)


def test_a_longer_run_has_every_lifecycle_change_and_supply_state(catalog: Catalog) -> None:
    config = SimulationConfig(accounts=200, rate=1.0, duration=6 * 3600)
    events = [e for _, e in generate(config, catalog)]
    kinds = Counter(getattr(e, "type", type(e).__name__) for e in events)
    for kind in ("started", "upgraded", "downgrade_scheduled", "renewed", "canceled"):
        assert kinds[kind] > 0, kind
    toggles = {e.enabled for e in events if isinstance(e, FallbackConfigured)}
    assert toggles == {True, False}
    states = {getattr(e, "supply_state", None) for e in events} - {None}
    assert states == {"low", "medium", "high", "surplus"}
    statuses = Counter(e.status for e in events if isinstance(e, GatewayRequest))
    assert set(statuses) == {"ok", "error", "canceled"}


def test_payg_studio_and_cached_shares_follow_the_config(catalog: Catalog) -> None:
    config = SimulationConfig(accounts=200, rate=4.0, duration=3600, payg_share=0.1)
    requests = requests_of(list(generate(config, catalog)))
    payg = sum(r.billing_mode == "payg" for r in requests) / len(requests)
    studio = sum(r.channel == "studio" for r in requests) / len(requests)
    cached = sum(r.usage.cached_input_tokens > 0 for r in requests) / len(requests)
    assert 0.08 < payg < 0.12
    assert 0.15 < studio < 0.40  # chat 40%, coding 5%, images 30%
    assert 0.1 < cached < 0.5
    assert all(r.completed_at >= r.started_at for r in requests)


def shapes(profile: Profile, count: int = 4000) -> list[Shape]:
    rng = random.Random(1)
    return [s for s in (profile.draw(rng) for _ in range(count)) if s.status == "ok"]


def test_chat_is_5000_input_and_1000_output_tokens_as_the_seed_says() -> None:
    drawn = shapes(CHAT)
    assert mean(s.usage.input_tokens + s.usage.cached_input_tokens for s in drawn) == pytest.approx(
        5000, rel=0.02
    )
    assert mean(s.usage.output_tokens for s in drawn) == pytest.approx(1000, rel=0.02)
    assert all(4000 <= s.usage.input_tokens + s.usage.cached_input_tokens <= 6000 for s in drawn)


def mean_flows(profile: Profile, model: str, catalog: Catalog) -> Decimal:
    version = catalog.latest
    price, formula = version.models[model], version.zenmux.flow
    values = [
        flows(list_cost_usd(price, s.usage, s.status), formula, s.status) for s in shapes(profile)
    ]
    return sum(values, Decimal(0)) / len(values)


def test_profiles_reproduce_the_seed_flow_sizes(catalog: Catalog) -> None:
    # Seed 000: Pro's 50 Flows ≈ 200 chats on GPT-5.2 (≈ 0.25 Flow each) ≈ 5-10 coding tasks on
    # Claude Sonnet 4.5 ≈ 30 NanoBananaPro 2K images (≈ 1.67 Flow each); SPEC: within ±10%.
    assert mean_flows(CHAT, "openai/gpt-5.2", catalog) == pytest.approx(
        Decimal("0.25"), rel=Decimal("0.1")
    )
    assert mean_flows(IMAGE, "nanobanana/nanobanana-pro", catalog) == pytest.approx(
        Decimal("1.67"), rel=Decimal("0.1")
    )
    tasks = Decimal(50) / mean_flows(CODING, "anthropic/claude-sonnet-4.5", catalog)
    assert 5 <= tasks <= 10


def test_image_requests_make_one_image_and_coding_has_long_outputs() -> None:
    assert all(s.usage.images == 1 and s.usage.output_tokens == 0 for s in shapes(IMAGE))
    coding = shapes(CODING)
    assert min(s.usage.output_tokens for s in coding) >= 10_000
    assert mean(s.latency_s for s in coding) > 60


def test_plan_limits_throttle_and_no_plan_limits_serves_the_offered_rate(
    catalog: Catalog,
) -> None:
    # given a busy small population
    config = SimulationConfig(accounts=20, rate=5.0, duration=600)
    limited = Traffic(config, catalog)
    served = len(requests_of(list(limited.events())))
    # then it cannot carry the rate within the plans' limits, and bursts are throttled
    assert sum(limited.rates()) < config.rate
    assert limited.throttled > 0
    # while without limits every arrival is served, ≈ rate × duration
    free = Traffic(replace(config, plan_limits=False), catalog)
    unlimited = len(requests_of(list(free.events())))
    assert free.throttled == 0
    assert unlimited == pytest.approx(config.rate * config.duration, rel=0.1)
    assert unlimited > served


def test_no_wall_clock_inside_the_start_is_the_only_anchor(catalog: Catalog) -> None:
    config = SimulationConfig(accounts=10, duration=300)
    later = replace(config, start=config.start + timedelta(days=1))
    shift = [at - config.start for at, _ in generate(config, catalog)]
    shifted = [at - later.start for at, _ in generate(later, catalog)]
    assert shift == shifted


def test_whole_numbers_and_their_floats_are_the_same_run(catalog: Catalog) -> None:
    # the command line gives floats, a test may give ints: one run either way
    ints = SimulationConfig(accounts=10, rate=1, duration=120)
    floats = SimulationConfig(accounts=10, rate=1.0, duration=120.0)
    assert ints.tag == floats.tag
    assert serialized(list(generate(ints, catalog))) == serialized(list(generate(floats, catalog)))
