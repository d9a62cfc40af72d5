"""The cluster tests' load puts accounts on every input partition (tests/cluster/load.py): a
partition without any can never charge, and the takeover test waits for every one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.catalog import load_catalog
from metering.replay.kafka_log import account_partition
from simulator import Traffic
from tests.cluster.load import LoadShape, spread_config

FAST = LoadShape(accounts=30, rate=12, duration=600)  # the takeover test's, on 6 partitions
UNCOVERED = datetime(2026, 11, 2, 9, 0, 9, tzinfo=UTC)
"""A start whose 30 accounts leave one of 6 partitions without any."""


def partitions_of(start: datetime, partitions: int) -> set[int]:
    config = spread_config(FAST, 11, 1, start)  # one partition: any start, kept as it is
    accounts = Traffic(config, load_catalog()).accounts
    return {account_partition(a.account_id, partitions) for a in accounts}


def test_a_start_that_leaves_a_partition_empty_is_moved_back_until_none_is() -> None:
    assert len(partitions_of(UNCOVERED, 6)) < 6

    config = spread_config(FAST, 11, 6, UNCOVERED)

    assert config.start == UNCOVERED - timedelta(milliseconds=1)
    assert partitions_of(config.start, 6) == set(range(6))


@pytest.mark.parametrize("second", range(0, 60, 7))
def test_every_start_gives_accounts_on_every_partition(second: int) -> None:
    now = datetime(2026, 11, 2, 9, 1, second, tzinfo=UTC)
    assert partitions_of(spread_config(FAST, 11, 6, now).start, 6) == set(range(6))


def test_fewer_accounts_than_partitions_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot cover"):
        spread_config(LoadShape(accounts=4, rate=1, duration=60), 11, 6, UNCOVERED)
