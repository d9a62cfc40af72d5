"""Leakage: requests served unfunded per exhaustion, a gateway obeying the routing view against
one ignoring it, on the same seeded traffic.

Run from the repository root (starts a local broker unless KAFKA_BOOTSTRAP_SERVERS is set):

    .venv/bin/python -m bench.leakage [--rate 400] [--duration 90] [--accounts 4000]

Two subjects, one after the other on one broker, each on topics of its own with a fresh
``metering worker`` (RocksDB tables), each fed the same simulated traffic (``simulator``: seed
``SEED``, ``--accounts`` subscribers, plan limits on — the gateway answers 429 over a plan's
RPM or concurrency — every request in subscription mode) on the demo's catalog
(``metering.demo.catalog``: one-minute "5-hour" windows) with caps a further ``CAP_SCALE``
lower, so windows run out within seconds:

1. baseline: the gateway ignores routing and sends every request as it is;
2. the gateway reads ``gateway.RoutingView`` when a request starts (``simulator.routing``'s
   ``RoutingGate``): ``blocked`` → refused, never sent; ``fallback`` or ``subscription`` → sent.

Each request is published when it completes (gateways publish served requests), paced in real
time; background accounts (``bench.workload``, other gateways' traffic) add what the pipeline
receives up to ``--rate`` input events/s.

Leaked request (SPEC "Windows and routing"): served in subscription mode although it *started*
at or after its window's exhaustion instant, on an account without a fallback key — the
ledger's ``funding = "unfunded"`` charges. (With a fallback key such a request is funded by it,
``funding = "payg"``: not leakage.) Each is attributed to its account's exhaustion that left
the account ``blocked`` (the routing record of reason ``exhausted``) and started last before
it. Per such exhaustion: leaked requests against the concurrency of the account's plan.
Exhaustion → view: the exhaustion instant (the crossing request's completion, when it was
published) → its ``blocked``/``fallback`` route read by the gateway's view.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from bench import report
from bench.latency import background
from bench.leaks import Exhaustions, Leaks, read_topic
from bench.services import Run, broker, end_offsets, produce, stop_on_sigterm, work_dir, workers
from bench.workload import Workload
from billing.catalog import load_catalog
from billing.catalog.model import Catalog
from gateway import RoutingView
from metering.demo.catalog import demo_catalog
from schemas import topics
from schemas.requests import GatewayRequest
from schemas.routing import RoutingState
from simulator.config import LifecycleShares, SimulationConfig
from simulator.events import Delivery
from simulator.faults import inject
from simulator.pacing import Pacer
from simulator.routing import RouteLookup, RoutingGate
from simulator.sinks import KafkaSink, kafka_publisher
from simulator.stats import SimulationStats
from simulator.traffic import Traffic

SEED = 7
CAP_SCALE = Decimal("0.1")
"""Caps of the demo catalog (already ×0.1 the shipped ones) times this."""
PARTITIONS = 4
SETUP_MARGIN_S = 10.0
SETUP_RATE = 400.0
"""Subscription records per second the worker is assumed to apply before the traffic starts
(pessimistic); the run fails, rather than measure skewed clocks, if the setup overruns."""
DRAIN_TIMEOUT_S = 1200.0
NO_CHANGES = LifecycleShares(upgrade=0, downgrade=0, fallback_toggle=0, cancel=0, renewal_in_run=0)
"""Subscriptions do not change during the run (beyond the fallback key set at the start), so
every route change is an exhaustion or a reset."""
SUBJECTS = (
    (False, "gateway ignores routing (baseline)"),
    (True, "gateway obeys the routing view"),
)


@dataclass(frozen=True)
class Load:
    rate: float
    """Input events/s the pipeline receives in all: simulated, plus background to make it up."""
    duration: float
    """Seconds in which simulated requests start, and background requests are sent."""
    accounts: int
    """Simulated subscribers."""
    background_accounts: int = 2000
    tail_s: float = 20.0
    """Simulated requests that complete within this after ``duration`` are still published;
    longer ones (coding requests last 30–300 s) are left out of both subjects alike."""


SMOKE = Load(rate=30.0, duration=15.0, accounts=600, background_accounts=100, tail_s=5.0)


def leakage_catalog(path: Path) -> Path:
    """The demo catalog with every cap ×``CAP_SCALE`` (windows and prices unchanged)."""
    document = demo_catalog()

    def scaled(value: Any) -> Any:
        return None if value is None else format(Decimal(str(value)) * CAP_SCALE, "f")

    for version in document["versions"]:
        for plan in version["zenmux"]["plans"].values():
            plan["caps"] = {kind: scaled(cap) for kind, cap in plan["caps"].items()}
        shares = version["lilac"]["cap_shares"]
        version["lilac"]["cap_shares"] = {
            kind: share if kind == "period" else scaled(share) for kind, share in shares.items()
        }
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


class GatewayAtStart(RoutingGate):
    """``RoutingGate`` asked when a request starts, as a gateway routes it; ``KafkaSink`` asks
    again when the request completes and gets that decision. (``RoutingGate`` alone decides at
    publication, i.e. completion: it would refuse requests already served, and understate
    leakage by every request that started before the route arrived and ended after.)"""

    def __init__(self, lookup: RouteLookup, stats: SimulationStats) -> None:
        super().__init__(lookup, stats)
        self._decided: dict[str, bool] = {}

    def start(self, delivery: Delivery) -> None:
        assert isinstance(delivery.value, GatewayRequest)
        self._decided[delivery.value.request_id] = super().admit(delivery)

    def admit(self, delivery: Delivery) -> bool:
        if isinstance(delivery.value, GatewayRequest):
            decided = self._decided.pop(delivery.value.request_id, None)
            if decided is not None:
                return decided
        return super().admit(delivery)

    async def follow(self, deliveries: Sequence[Delivery], pacer: Pacer) -> None:
        """Decide each request at its ``started_at``, paced like the sink."""
        for delivery in sorted((d for d in deliveries if isinstance(d.value, GatewayRequest)),
                               key=started_at):  # fmt: skip
            await pacer.wait_until(started_at(delivery))
            self.start(delivery)


def started_at(delivery: Delivery) -> datetime:
    assert isinstance(delivery.value, GatewayRequest)
    return delivery.value.started_at


@dataclass
class Outcome:
    """One subject's run: what was sent, and what the pipeline made of it."""

    subject: str
    input_events: int
    seconds: float
    served: int
    refused: int
    gate_leaked: int
    backlog: int
    """Input records not yet charged when the traffic ended."""
    drain_s: float
    exhaustions: Exhaustions
    leaks: Leaks
    view_s: list[float] = field(default_factory=list)


def simulation(accounts: int, duration: float, start: datetime) -> SimulationConfig:
    """Every account offered as much as its plan carries (``rate`` far above it)."""
    return SimulationConfig(
        seed=SEED, accounts=accounts, rate=float(accounts), duration=duration, start=start,
        payg_share=0.0, plan_limits=True, lifecycle=NO_CHANGES,
    )  # fmt: skip


async def input_charged(run: Run) -> int:
    """Records the worker has answered: ledger entries and dead letters."""
    return sum([await end_offsets(run, run.topic(t)) for t in (topics.LEDGER, topics.DLQ)])


async def poll(condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float) -> float:
    """Check ``condition`` every half second (each check opens a consumer); seconds taken."""
    began = time.monotonic()
    while not await condition():
        if time.monotonic() - began > timeout_s:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.5)
    return time.monotonic() - began


@contextlib.asynccontextmanager
async def gateway_view(
    run: Run, accounts: set[str], seen: list[float]
) -> AsyncIterator[RoutingView]:
    """The gateway SDK's routing view of this run, noting for each exhaustion of ``accounts``
    how long after its instant the view had it."""

    async def on_change(state: RoutingState) -> None:
        if state.reason == "exhausted" and state.account_id in accounts:
            seen.append(time.time() - state.at.timestamp())

    async with RoutingView(run.bootstrap, topic_prefix=run.prefix, on_change=on_change) as view:
        await view.wait_ready(timeout=60)
        yield view


async def measure(
    bootstrap: str, home: Path, catalog_path: Path, catalog: Catalog, obey: bool, subject: str,
    load: Load,
) -> Outcome:  # fmt: skip
    """One subject on topics of its own, with a worker of its own:

    1. generate the traffic, its start far enough ahead for the setup to be applied;
    2. send the subscriptions, wait until each has its first route;
    3. at the start, send the simulated deliveries paced in real time (through the gate, if
       ``obey``) and the background load, for ``load.duration`` (+ the tail);
    4. wait until the worker has charged every request sent;
    5. read the ledger, quota and routing records of the simulated accounts.
    """
    tag = uuid.uuid4().hex[:8]
    run = Run(bootstrap, f"bench-{tag}-", PARTITIONS, home / tag, catalog_path)
    run.home.mkdir()
    await run.create_topics()
    async with workers(run, 1):
        # Step 1. The traffic, timed to start once the subscriptions are surely applied.
        others = Workload(load.background_accounts, datetime.now(UTC), run=tag)
        setup_records = load.background_accounts + load.accounts * 1.5  # started (+ fallback) each
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(
            seconds=SETUP_MARGIN_S + setup_records / SETUP_RATE
        )
        config = simulation(load.accounts, load.duration, start)
        traffic = Traffic(config, catalog)
        end = start + timedelta(seconds=load.duration + load.tail_s)
        deliveries = [d for d in inject(traffic.events(), config) if d.at <= end]
        preamble = [d for d in deliveries if d.at < start]
        live = deliveries[len(preamble) :]
        # Step 2. Subscriptions, then wait until each has its first route.
        await produce(run, others.subscriptions() + [
            (d.topic, d.key.encode(), d.payload()) for d in preamble])  # fmt: skip
        started = load.background_accounts + sum(d.kind == "started" for d in preamble)

        async def subscribed() -> bool:
            return await end_offsets(run, run.topic(topics.ROUTING)) >= started

        await poll(subscribed, "every subscription applied", timeout_s=300)
        if time.time() > start.timestamp():
            raise RuntimeError(f"the setup overran the traffic's start by "
                               f"{time.time() - start.timestamp():.1f}s: raise SETUP_MARGIN_S")  # fmt: skip
        measured = {a.account_id for a in traffic.accounts}
        stats = SimulationStats()
        seen: list[float] = []
        async with gateway_view(run, measured, seen) as view:
            gate = GatewayAtStart(view, stats) if obey else None
            async with kafka_publisher(bootstrap, run.prefix) as publisher:
                # Step 3. Simulated time runs with the wall clock (the worker ticks resets by it).
                pacer = Pacer(start, 1.0, clock=time.time)
                await asyncio.sleep(start.timestamp() - time.time())
                pacer.due(start)  # fixes the pacer's origin: now
                unload = asyncio.Event()
                others_rate = max(0.0, load.rate - sum(traffic.rates()))
                loaded = asyncio.create_task(background(run, others, others_rate, unload))
                deciding = asyncio.create_task(gate.follow(live, pacer)) if gate else None
                sink = KafkaSink(publisher, pacer, gate, stats)
                sending = asyncio.create_task(sink.run(live))
                await asyncio.sleep(load.duration)
                unload.set()
                sent, seconds = await loaded
                await sending
                if deciding is not None:
                    await deciding
            # Step 4. Every send acknowledged; wait until the worker has charged them all.
            expected = sent + stats.by_kind["request"]
            backlog = expected - await input_charged(run)

            async def drained() -> bool:
                return await input_charged(run) >= expected

            drain_s = await poll(drained, "every request charged", timeout_s=DRAIN_TIMEOUT_S)
            await asyncio.sleep(1)  # the routing records of the last batch reach the view
        # Step 5. Read what the worker wrote about the measured accounts.
        ledger = await read_topic(run, topics.LEDGER, config.tag)
        routing = await read_topic(run, topics.ROUTING, config.tag)
        quota = await read_topic(run, topics.QUOTA, config.tag)
    exhaustions = Exhaustions.of(quota, routing, traffic)
    return Outcome(
        subject=subject, input_events=sent + stats.sent, seconds=seconds,
        served=stats.by_kind["request"], refused=stats.refused, gate_leaked=stats.leaked,
        backlog=backlog, drain_s=drain_s, exhaustions=exhaustions,
        leaks=exhaustions.attribute(ledger), view_s=seen,
    )  # fmt: skip


async def bench(load: Load) -> None:
    with broker() as (bootstrap, description), work_dir() as home:
        report.header("leakage per exhaustion", description)
        catalog_path = leakage_catalog(home / "catalog.yaml")
        catalog = load_catalog(catalog_path)
        outcomes = [
            await measure(bootstrap, home, catalog_path, catalog, obey, subject, load)
            for obey, subject in SUBJECTS
        ]  # fmt: skip
    base = outcomes[0]
    for o in outcomes:
        print(f"{o.subject}: {o.input_events:,} input events in {o.seconds:.0f} s "
              f"({o.input_events / o.seconds:,.0f}/s; {o.served:,} simulated requests served, "
              f"{o.refused:,} refused); backlog when the traffic ended: {o.backlog:,} records, "
              f"drained in {o.drain_s:.0f} s; leaked by the gate's own count: {o.gate_leaked:,}; "
              f"unfunded not after an exhaustion: {o.leaks.unattributed}")  # fmt: skip
    print("plan concurrency (catalog): " + ", ".join(
        f"{family} {plan} {c}" for (family, plan), c in base.exhaustions.concurrency.items()))  # fmt: skip
    print(f"leaked (unfunded): baseline {base.leaks.total}, obeying {outcomes[1].leaks.total}")
    rows = []
    for o in outcomes:
        per = o.leaks.per_exhaustion
        mean = sum(per) / len(per) if per else 0.0
        base_per = base.leaks.per_exhaustion
        base_mean = sum(base_per) / len(base_per) if base_per else 0.0
        rows.append((
            o.subject, round(o.input_events / o.seconds), o.served, o.refused,
            o.exhaustions.total, len(per), o.leaks.total, f"{mean:.3f}", max(per, default=0),
            o.leaks.over_concurrency, f"{mean / base_mean:.2f}" if base_mean else "—",
            ms(report.quantile(o.view_s, 0.5)), ms(report.quantile(o.view_s, 0.99)),
        ))  # fmt: skip
    report.table(rows, [
        "subject", "input events/s", "requests served", "refused", "exhaustions",
        "of which blocked", "leaked (unfunded)", "leaked per blocked exhaustion: mean", "max",
        "exhaustions leaking > plan concurrency", "mean × baseline",
        "exhaustion → view p50 ms", "p99 ms",
    ])  # fmt: skip


def ms(seconds: float) -> float:
    return seconds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=400.0, help="input events/s in all")
    parser.add_argument("--duration", type=float, default=90.0, help="seconds of traffic")
    parser.add_argument("--accounts", type=int, default=4000, help="simulated subscribers")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    args = parser.parse_args()
    stop_on_sigterm()
    load = SMOKE if args.smoke else Load(args.rate, args.duration, args.accounts)
    asyncio.run(bench(load))


if __name__ == "__main__":
    main()
