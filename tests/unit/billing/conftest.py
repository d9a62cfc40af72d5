"""Run a scenario through the core exactly as ``metering replay`` does, and sort what came out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from billing.catalog import Catalog, load_catalog
from billing.engine import Engine
from billing.policy import Policy
from billing.replay import Replay
from schemas.dlq import DeadLetter
from schemas.ledger import LedgerEntry
from schemas.quota import QuotaEvent
from schemas.routing import RoutingState
from tests.factories import records


@dataclass
class Run:
    ledger: list[LedgerEntry] = field(default_factory=list)
    quota: list[QuotaEvent] = field(default_factory=list)
    routing: list[RoutingState] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    engine: Engine | None = None

    def entry(self, request_id: str) -> LedgerEntry:
        return next(e for e in self.ledger if e.request_id == request_id and e.kind == "charge")


def run_scenario(
    values: list[Any], catalog: Catalog | None = None, policy: Policy | None = None
) -> Run:
    engine = Engine(catalog or load_catalog(), accounts={}, seen={}, discounts={}, policy=policy)
    result = Run(engine=engine)
    for item in Replay(engine).run(records(values)):
        result.order.append(item.topic)
        bucket = {
            "metering.ledger": result.ledger,
            "metering.quota": result.quota,
            "metering.routing": result.routing,
            "metering.dlq": result.dead,
        }[item.topic]
        bucket.append(item.value)  # type: ignore[arg-type]
    return result


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()
