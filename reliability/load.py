"""The load a run sends: the simulator's traffic with input faults, as Kafka records in order.

Pure (the caller passes ``now``): the same shape, catalog and instant give the same records.

1. The simulator generates the run by seed, with duplicates, minutes-late stragglers and
   malformed payloads (``simulator.faults``). Its start is placed so that every event time
   lies before ``now``: the worker judges future timestamps against the Kafka record time.
2. Lifecycle and discount events go first, as their own phase (``setup``): the live ledger
   equals the replay of the Kafka log when they precede the traffic they govern
   (streams/README.md, "Cross-topic order"); the harness waits until the worker applied them.
3. Stragglers *days* late: a seeded share of the requests is taken out of its place and
   delivered at the end, its times moved one to three days back (same request id).
4. The bad-input corpus (``reliability.bad_input``) goes in the middle of the traffic, built
   from requests of the first half, so valid traffic follows it and must still be charged.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from billing.catalog.model import Catalog
from reliability.bad_input import BadInput, bad_inputs
from schemas.requests import GatewayRequest
from simulator import SimulationConfig, deliveries
from simulator.events import Delivery

LATENCY_MARGIN_S: Final = 360.0
"""Room after the run for the longest request (coding, 300 s) to complete before ``now``."""
DAYS_LATE: Final = (1.0, 3.0)
"""How far back a days-late straggler's times are moved, in days (assumption: a gateway's
buffer replayed after an outage of a day or more)."""


@dataclass(frozen=True)
class LoadShape:
    """How much traffic, and how much of each input fault."""

    seed: int = 7
    accounts: int = 12
    rate: float = 4.0
    """Requests per second of simulated time (the run is published as fast as Kafka takes it)."""
    duration: float = 90.0
    """Seconds of simulated time in which requests start."""
    duplicate_rate: float = 0.10
    straggler_rate: float = 0.05
    """Share of requests delivered 1-15 minutes late (out of order within minutes)."""
    days_late_rate: float = 0.02
    malformed_rate: float = 0.01
    bad_per_class: int = 1
    """Records of each ``reliability.bad_input`` class."""


@dataclass(frozen=True)
class Record:
    """One record to publish: input topic (no prefix), key, exact value, and what it is."""

    topic: str
    key: str
    value: bytes
    kind: str
    """``setup``, ``request``, ``duplicate``, ``straggler``, ``days_late``, ``malformed``, or
    ``bad:<class>``."""


@dataclass(frozen=True)
class Load:
    setup: list[Record]
    traffic: list[Record]
    bad: list[BadInput] = field(default_factory=list)
    malformed: list[bytes] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Records per kind, over both phases."""
        return dict(sorted(Counter(r.kind for r in [*self.setup, *self.traffic]).items()))


def simulation(shape: LoadShape, now: datetime) -> SimulationConfig:
    start = now - timedelta(seconds=shape.duration + LATENCY_MARGIN_S)
    return SimulationConfig(
        seed=shape.seed,
        accounts=shape.accounts,
        rate=shape.rate,
        duration=shape.duration,
        start=start.replace(microsecond=start.microsecond // 1000 * 1000),
        duplicate_rate=shape.duplicate_rate,
        straggler_rate=shape.straggler_rate,
        malformed_rate=shape.malformed_rate,
        plan_limits=False,  # the offered rate is the load; RPM throttling would thin it out
    )


def _record(delivery: Delivery) -> Record:
    kind = delivery.fault or ("request" if isinstance(delivery.value, GatewayRequest) else "setup")
    return Record(delivery.topic, delivery.key, delivery.payload(), kind)


def build_load(shape: LoadShape, catalog: Catalog, now: datetime) -> Load:
    """Steps 1-4 of the module docstring."""
    # Step 1.
    config = simulation(shape, now)
    end = config.start_utc + timedelta(seconds=config.duration)
    every = list(deliveries(config, catalog))
    # Step 2. Lifecycle dated after the run (renewals, period ends) has not happened yet.
    setup = [
        _record(d) for d in every if not isinstance(d.value, GatewayRequest | bytes) and d.at <= end
    ]
    traffic = [d for d in every if isinstance(d.value, GatewayRequest | bytes)]
    # Step 3.
    rng = random.Random(f"days-late:{shape.seed}")
    ids = Counter(d.value.request_id for d in traffic if isinstance(d.value, GatewayRequest))
    late: list[Record] = []
    kept: list[Record] = []
    for delivery in traffic:
        request = delivery.value
        movable = (
            isinstance(request, GatewayRequest)
            and delivery.fault is None
            and ids[request.request_id] == 1
        )
        if movable and rng.random() < shape.days_late_rate:
            assert isinstance(request, GatewayRequest)
            back = timedelta(days=rng.uniform(*DAYS_LATE))
            moved = request.model_copy(
                update={
                    "started_at": request.started_at - back,
                    "completed_at": request.completed_at - back,
                }
            )
            late.append(
                Record(delivery.topic, delivery.key, moved.model_dump_json().encode(), "days_late")
            )
        else:
            kept.append(_record(delivery))
    # Step 4.
    middle = len(kept) // 2
    sources = [
        GatewayRequest.model_validate_json(r.value) for r in kept[:middle] if r.kind == "request"
    ]
    bad = bad_inputs(sources, now, shape.seed, shape.bad_per_class) if sources else []
    spoiled = [Record(b.topic, b.key, b.payload, f"bad:{b.kind}") for b in bad]
    return Load(
        setup=setup,
        traffic=[*kept[:middle], *spoiled, *kept[middle:], *late],
        bad=bad,
        malformed=[r.value for r in kept if r.kind == "malformed"],
    )
