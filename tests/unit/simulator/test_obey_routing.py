"""Obey routing: before each subscription-mode request the simulated gateway reads the account's
route — serves it on ``subscription``, serves it unchanged on ``fallback`` (the core funds it
from the fallback key), refuses it on ``blocked`` — and counts what it did."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from schemas import topics
from schemas.requests import GatewayRequest
from schemas.routing import Route, RoutingState
from simulator.events import Delivery
from simulator.pacing import Pacer
from simulator.route_feed import RouteFeed
from simulator.routing import RoutingGate
from simulator.sinks import KafkaSink
from simulator.stats import SimulationStats
from tests.factories import T0, at, encode, request

ZEN, LIL = "acct_zen", "acct_lil"


def req(account: str, minute: float, rid: str, mode: str = "subscription") -> GatewayRequest:
    value = request(account, start=at(minute), request_id=rid, mode=mode)
    return GatewayRequest.model_validate_json(encode(value))


def sent(value: GatewayRequest, fault: Any = None) -> Delivery:
    return Delivery.of(value.completed_at, value, fault)


class Routes:
    """A fake ``metering.routing`` view: set a route, and it is what lookups return."""

    def __init__(self) -> None:
        self.states: dict[str, RoutingState] = {}
        self.lookups: list[str] = []

    def set(self, account: str, route: Route, since: datetime) -> None:
        seq = self.states[account].seq + 1 if account in self.states else 1
        self.states[account] = RoutingState(
            schema_version=1,
            account_id=account,
            route=route,
            fallback_key_id="key_payg" if route == "fallback" else None,
            until=None,
            reason="exhausted" if route != "subscription" else "reset",
            seq=seq,
            at=since,
        )

    def route(self, account_id: str) -> RoutingState | None:
        self.lookups.append(account_id)
        return self.states.get(account_id)


class FakePublisher:
    """Records what the Kafka sink publishes, in order."""

    def __init__(self) -> None:
        self.published: list[Any] = []

    async def publish(self, event: Any) -> None:
        self.published.append(event)

    async def publish_raw(self, topic: str, key: bytes, value: bytes) -> None:
        self.published.append((topic, key, value))


async def run(routes: Routes, items: list[Delivery]) -> tuple[FakePublisher, SimulationStats]:
    publisher = FakePublisher()
    stats = SimulationStats()
    sink = KafkaSink(publisher, Pacer(T0, 0), RoutingGate(routes, stats), stats)
    await sink.run(items)
    return publisher, stats


async def test_blocked_requests_are_refused_and_others_served() -> None:
    # given ZEN blocked and LIL with no route yet
    routes = Routes()
    routes.set(ZEN, "blocked", at(0))
    items = [sent(req(ZEN, 1, "z1")), sent(req(LIL, 1, "l1")), sent(req(ZEN, 2, "z2"))]
    # when the gateway sends them
    publisher, stats = await run(routes, items)
    # then only LIL's request went out
    assert [r.request_id for r in publisher.published] == ["l1"]
    assert (stats.refused, stats.rerouted, stats.sent) == (2, 0, 1)


async def test_fallback_requests_are_served_unchanged_and_counted_as_rerouted() -> None:
    # given ZEN routed to its fallback key
    routes = Routes()
    routes.set(ZEN, "fallback", at(0))
    original = req(ZEN, 1, "z1")
    # when the gateway serves it
    publisher, stats = await run(routes, [sent(original)])
    # then it is published as it was: billing_mode subscription, the caller's key — the
    # billing core funds it from the account's fallback key (ledger funding = payg)
    assert publisher.published == [original]
    assert publisher.published[0].billing_mode == "subscription"
    assert (stats.rerouted, stats.refused, stats.sent) == (1, 0, 1)


async def test_payg_requests_and_malformed_bytes_pass_without_a_lookup() -> None:
    routes = Routes()
    routes.set(ZEN, "blocked", at(0))
    payg = req(ZEN, 1, "z1", mode="payg")
    broken = Delivery(at(1), b'{"schema_version":1,', topics.REQUESTS, ZEN, "malformed")
    publisher, stats = await run(routes, [sent(payg), broken])
    assert publisher.published == [payg, (topics.REQUESTS, ZEN.encode(), b'{"schema_version":1,')]
    assert routes.lookups == []
    assert (stats.sent, stats.malformed, stats.refused) == (2, 1, 0)


async def test_a_duplicate_follows_its_originals_decision_without_counting_twice() -> None:
    routes = Routes()
    routes.set(ZEN, "blocked", at(0))
    refused = req(ZEN, 1, "z1")
    lil = req(LIL, 2, "l1")
    items = [
        sent(refused),
        sent(refused, "duplicate"),
        sent(lil),
        sent(lil, "duplicate"),
    ]
    publisher, stats = await run(routes, items)
    assert [r.request_id for r in publisher.published] == ["l1", "l1"]
    assert (stats.refused, stats.duplicates, stats.sent) == (1, 1, 2)


async def test_requests_served_on_a_lagging_subscription_view_are_counted_as_leaked() -> None:
    # given ZEN on subscription, and three requests served while the gateway believes it
    routes = Routes()
    routes.set(ZEN, "subscription", at(0))
    served = [req(ZEN, minute, f"z{minute}") for minute in (1, 2, 3)]
    publisher = FakePublisher()
    stats = SimulationStats()
    gate = RoutingGate(routes, stats)
    sink = KafkaSink(publisher, Pacer(T0, 0), gate, stats)
    await sink.run([sent(r) for r in served])
    assert stats.leaked == 0
    # when the gateway learns that the window was exhausted at minute 1.5 (fallback since)
    routes.set(ZEN, "fallback", at(1.5))
    await sink.run([sent(req(ZEN, 4, "z4"))])
    # then the two requests that started after the exhaustion were served on a stale view
    assert stats.leaked == 2
    assert stats.rerouted == 1
    assert len(publisher.published) == 4


@pytest.mark.parametrize("route", ["blocked", "fallback"])
async def test_the_leakage_is_also_found_at_the_end_of_a_run(route: Route) -> None:
    routes = Routes()
    stats = SimulationStats()
    sink = KafkaSink(FakePublisher(), Pacer(T0, 0), RoutingGate(routes, stats), stats)
    routes.set(ZEN, "subscription", at(0))
    await sink.run([sent(req(ZEN, 1, "z1")), sent(req(ZEN, 2, "z2"))])
    routes.set(ZEN, route, at(0.5))
    await sink.run([])  # no more requests: the run's end reads the route once more
    assert stats.leaked == 2


def test_the_route_feed_keeps_the_newest_state_per_account_and_skips_garbage() -> None:
    routes = Routes()
    routes.set(ZEN, "subscription", at(0))
    older = routes.states[ZEN]
    routes.set(ZEN, "blocked", at(1))
    newer = routes.states[ZEN]
    feed = RouteFeed()
    feed.take(newer.model_dump_json().encode())
    feed.take(older.model_dump_json().encode())  # compaction may hand an old record late
    feed.take(b"not a route")
    feed.take(None)  # a tombstone
    assert feed.route(ZEN) == newer
    assert feed.route(LIL) is None
    assert feed.skipped == 2
