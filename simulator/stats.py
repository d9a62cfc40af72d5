"""What a run delivered, as its sink and simulated gateway counted it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from simulator.events import Delivery


@dataclass
class SimulationStats:
    """Counters of one run. ``sent`` counts records handed to the sink, faults included.

    ``refused``: requests not served because the route was ``blocked``. ``rerouted``: requests
    served while the route was ``fallback`` (funded by the fallback key). ``leaked``: requests
    served on a ``subscription`` view that a route learned later shows was already
    ``fallback``/``blocked`` when they started — the gateway's view lagging the core.
    """

    sent: int = 0
    refused: int = 0
    rerouted: int = 0
    leaked: int = 0
    duplicates: int = 0
    stragglers: int = 0
    malformed: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_topic: Counter[str] = field(default_factory=Counter)

    def record(self, delivery: Delivery) -> None:
        """Count one record the sink wrote."""
        self.sent += 1
        self.by_kind[delivery.kind] += 1
        self.by_topic[delivery.topic] += 1
        if delivery.fault == "duplicate":
            self.duplicates += 1
        elif delivery.fault == "straggler":
            self.stragglers += 1
        elif delivery.fault == "malformed":
            self.malformed += 1
