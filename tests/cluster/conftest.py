"""The cluster tests: each in a fast form (default run, CI) and a full form (marker ``cluster``).

The full forms are deselected unless the marker expression names them:
``pytest -m cluster tests/cluster`` (``make test-cluster``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from metering.settings import Settings
from streams.admin import ensure_topics


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "cluster" in (config.getoption("markexpr") or ""):
        return
    full = [item for item in items if item.get_closest_marker("cluster")]
    if full:
        config.hook.pytest_deselected(items=full)
        items[:] = [item for item in items if item.get_closest_marker("cluster") is None]


def worker_env(
    bootstrap: str, prefix: str, home: Path, partitions: int, **extra: str
) -> dict[str, str]:
    """A ``metering worker`` subprocess's environment: its broker, topics, state and more."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "METERING_TOPIC_PREFIX": prefix,
        "METERING_HOME": str(home),
        "METERING_PARTITIONS": str(partitions),
        **extra,
    }


async def create_topics(bootstrap: str, prefix: str, partitions: int) -> None:
    """The pipeline's topics, as a worker creates them at start (``streams.admin``)."""
    settings = Settings(METERING_TOPIC_PREFIX=prefix, METERING_PARTITIONS=partitions)
    await ensure_topics(settings, bootstrap)
