"""The demo's gateway: the simulator's traffic, paced in real time, obeying the routing view.

The simulator (``simulator/``) decides what happens and when; this module only wires it to
the live pipeline: its deliveries go through an idempotent producer to this run's topics,
and a ``RoutingGate`` over the gateway SDK's ``RoutingView`` refuses requests while an
account is blocked and counts those served on the fallback key.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import takewhile

from billing.catalog.model import Catalog
from gateway import RoutingView
from simulator.config import SimulationConfig
from simulator.faults import inject
from simulator.pacing import Pacer
from simulator.routing import RoutingGate
from simulator.sinks import KafkaSink, kafka_publisher
from simulator.stats import SimulationStats
from simulator.traffic import generate

TrafficStats = SimulationStats


async def drive(
    config: SimulationConfig,
    catalog: Catalog,
    bootstrap_servers: str,
    prefix: str,
    routes: RoutingView,
    stats: TrafficStats,
) -> TrafficStats:
    """Publish the run's deliveries at their simulated instants (speed 1: real time), up to
    the end of the run: the simulator also schedules later events (renewals, downgrades at
    period end) that a demo of a few minutes must not wait for."""
    end = config.start + timedelta(seconds=config.duration)
    deliveries = takewhile(lambda d: d.at <= end, inject(generate(config, catalog), config))
    async with kafka_publisher(bootstrap_servers, prefix) as publisher:
        sink = KafkaSink(publisher, Pacer(config.start, 1.0), RoutingGate(routes, stats), stats)
        return await sink.run(deliveries)
