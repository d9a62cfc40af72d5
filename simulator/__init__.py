"""A deterministic traffic simulator: gateways, billing and pricing as the pipeline sees them.

``generate`` (traffic.py) is a pure function of the config and the catalog: accounts on every
plan of both families send Poisson request traffic shaped by the seeds' request mixes, while
subscriptions change and live discounts move. ``inject`` (faults.py) adds duplicates,
stragglers and malformed payloads, by the seed too. Sinks (sinks.py) write a ``LOG.jsonl``
for ``metering replay`` or publish to Kafka in real time, optionally obeying routing.
"""

from __future__ import annotations

from collections.abc import Iterator

from billing.catalog.model import Catalog
from simulator.config import DEFAULT_START, LifecycleShares, SimulationConfig
from simulator.events import Delivery, Event
from simulator.faults import inject
from simulator.traffic import Traffic, generate


def deliveries(config: SimulationConfig, catalog: Catalog) -> Iterator[Delivery]:
    """The run as a sink receives it: the generated events with the config's faults."""
    return inject(generate(config, catalog), config)


__all__ = [
    "DEFAULT_START",
    "Delivery",
    "Event",
    "LifecycleShares",
    "SimulationConfig",
    "Traffic",
    "deliveries",
    "generate",
    "inject",
]
