"""The worker's Faust tables, as declared: what a multi-worker deployment depends on."""

from __future__ import annotations

from pathlib import Path

from metering.settings import Settings
from streams.topology import build


def test_the_global_discounts_table_applies_each_changelog_record_as_it_comes(
    tmp_path: Path,
) -> None:
    # given the worker's app
    topology = build(Settings(METERING_HOME=tmp_path), web_enabled=False)

    # then the discounts GlobalTable applies another worker's writes at once (Faust would
    # otherwise buffer up to 1000 of them after recovery: faust #541, #716), and keeps the
    # standby replicas of the partitioned tables
    assert topology.discount_table.is_global
    assert topology.discount_table.recovery_buffer_size == 1
    assert topology.discount_table.standby_buffer_size == 1
    assert topology.accounts.recovery_buffer_size > 1  # partitioned tables recover in bulk
    assert topology.app.conf.table_standby_replicas == 1


def test_the_changelogs_named_for_creation_are_the_ones_faust_reads(tmp_path: Path) -> None:
    # given an app with a topic prefix
    topology = build(
        Settings(METERING_HOME=tmp_path, METERING_TOPIC_PREFIX="t-"), web_enabled=False
    )

    # then the worker pre-creates exactly the four tables' changelogs under Faust's names
    assert topology.changelogs() == [
        f"t-metering-worker-{table}-changelog"
        for table in ("accounts", "seen", "discounts", "positions")
    ]


def test_a_recovery_fetches_many_account_values_per_round_trip(tmp_path: Path) -> None:
    # Faust's 1 MiB per partition (a thousand account values) made a recovery twice as slow;
    # Faust hands this to aiokafka as max_partition_fetch_bytes
    conf = build(Settings(METERING_HOME=tmp_path), web_enabled=False).app.conf
    assert conf.consumer_max_fetch_size >= 8 << 20
