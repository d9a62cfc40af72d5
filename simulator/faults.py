"""Fault injection: what a real gateway fleet does to a clean event stream, decided by the seed.

Faults touch requests only (a duplicated or late lifecycle event is another story: a second
``started`` is a conflict, not a re-delivery). Per request, in this order:

1. ``duplicate_rate``: delivered twice, the copy right behind the original (at-least-once
   delivery after a producer retry); the billing core must charge it once.
2. ``straggler_rate``: delivered 1-15 minutes late, behind requests that completed after it,
   with its own ``started_at``/``completed_at`` unchanged (its copy, if any, travels with it).
3. ``malformed_rate``: a broken payload follows it on ``gateway.requests`` — its JSON cut
   short, or valid JSON missing a required field; the core must dead-letter it.

Each request draws the same count of numbers from the faults stream whatever the rates, so a
rate of zero injects nothing and changing one rate never moves another fault.
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime

from schemas import topics
from schemas.requests import GatewayRequest
from simulator.clock import instant
from simulator.config import SimulationConfig
from simulator.events import Delivery, Event
from simulator.seeding import stream

STRAGGLER_DELAY_S = (60.0, 900.0)
"""assumption: "delayed by minutes" — a gateway's buffer flushed after a network partition."""
MISSING_FIELDS = ("usage", "model", "started_at", "status", "api_key_id")


def inject(
    events: Iterable[tuple[datetime, Event]], config: SimulationConfig
) -> Iterator[Delivery]:
    """The deliveries of ``events`` with faults injected, in non-decreasing delivery time."""
    rng = stream(config.seed, "faults")
    order = itertools.count()
    held: list[tuple[datetime, int, Delivery]] = []
    for at, event in events:
        while held and held[0][0] <= at:
            yield heapq.heappop(held)[2]
        if not isinstance(event, GatewayRequest):
            yield Delivery.of(at, event)
            continue
        # Every draw, always, in a fixed order.
        u_duplicate, u_late, u_malformed = rng.random(), rng.random(), rng.random()
        delay, u_kind, u_cut = rng.uniform(*STRAGGLER_DELAY_S), rng.random(), rng.random()
        # Step 1.
        batch = [Delivery.of(at, event)]
        if u_duplicate < config.duplicate_rate:
            batch.append(Delivery.of(at, event, "duplicate"))
        # Step 2.
        if u_late < config.straggler_rate:
            due = instant(at, delay)
            for delivery in batch:
                late = replace(delivery, at=due, fault=delivery.fault or "straggler")
                heapq.heappush(held, (due, next(order), late))
        else:
            yield from batch
        # Step 3.
        if u_malformed < config.malformed_rate:
            payload = malformed(event, u_kind, u_cut)
            yield Delivery(at, payload, topics.REQUESTS, event.account_id, "malformed")
    while held:
        yield heapq.heappop(held)[2]


def malformed(request: GatewayRequest, u_kind: float, u_cut: float) -> bytes:
    """A broken copy of ``request``: half cut short (never valid JSON: the object is not
    closed), half valid JSON missing one required field. Never a newline in it."""
    text = request.model_dump_json()
    if u_kind < 0.5:
        cut = 1 + int(u_cut * (len(text) - 2))
        return text[:cut].encode("utf-8")
    data = json.loads(text)
    del data[MISSING_FIELDS[int(u_cut * len(MISSING_FIELDS))]]
    return json.dumps(data, separators=(",", ":")).encode("utf-8")
