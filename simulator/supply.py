"""The live per-model discount market (seed 004 "Live per-model discounts": Low 1.00×, Medium
0.75×, High 0.50×, Surplus 0.25×; "Discounts depend on current supply for each model and can
change at any time").

At the run's start every model the simulated Lilac traffic uses gets a supply state, the
four states dealt out so each appears; then supply changes arrive as a Poisson process (mean
``discount_interval`` seconds), each moving one model to a different state.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import get_args

from schemas.discounts import DiscountChange, SupplyState
from simulator.clock import instant
from simulator.config import SimulationConfig
from simulator.seeding import stream

STATES: tuple[SupplyState, ...] = get_args(SupplyState)


def supply_changes(
    config: SimulationConfig, models: Iterable[str]
) -> list[tuple[datetime, DiscountChange]]:
    """Every discount event of the run, in time order (the opening snapshot at ``start``)."""
    rng = stream(config.seed, "supply")
    ordered = sorted(set(models))
    if not ordered:
        return []
    start = config.start_utc
    dealt = [STATES[index % len(STATES)] for index in range(len(ordered))]
    rng.shuffle(dealt)
    current = dict(zip(ordered, dealt, strict=True))
    events = [(start, _change(model, state, start)) for model, state in current.items()]
    offset = rng.expovariate(1 / config.discount_interval)
    while offset < config.duration:
        at = instant(start, offset)
        model = rng.choice(ordered)
        state = rng.choice([s for s in STATES if s != current[model]])
        current[model] = state
        events.append((at, _change(model, state, at)))
        offset += rng.expovariate(1 / config.discount_interval)
    return events


def _change(model: str, state: SupplyState, at: datetime) -> DiscountChange:
    return DiscountChange(schema_version=1, model=model, supply_state=state, effective_at=at)
