"""Shared by the simulator's tests: the shipped catalog and small, fast run configs."""

from __future__ import annotations

import pytest

from billing.catalog import Catalog, load_catalog
from simulator import SimulationConfig


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def small() -> SimulationConfig:
    """A few minutes of traffic: every account, plan and event kind, in well under a second."""
    return SimulationConfig(seed=3, accounts=40, rate=2.0, duration=900)
