"""Topic replication follows the cluster: 1 broker → 1 copy; 3 or more → 3, of which 2 must
acknowledge a write; and the worker's Faust app (changelogs, group session) is built with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from metering.errors import ConfigError
from metering.settings import Settings
from streams.admin import Replication, replication_for
from streams.topology import build


@pytest.mark.parametrize(
    ("brokers", "configured", "factor", "min_insync"),
    [
        (1, None, 1, 1),  # the local single broker
        (2, None, 2, 1),  # two copies, but one broker away must not stop writes
        (3, None, 3, 2),  # the local cluster: any one broker may go
        (5, None, 3, 2),  # more brokers spread partitions; three copies stay enough
        (3, 1, 1, 1),  # an operator's explicit choice is kept
        (5, 5, 5, 2),
    ],
)
def test_replication_derives_from_the_live_brokers_unless_configured(
    brokers: int, configured: int | None, factor: int, min_insync: int
) -> None:
    # when the replication of new topics is decided on a cluster of `brokers`
    replication = replication_for(brokers, configured)

    # then the factor and the acknowledgements a write needs are as the table says
    assert (replication.factor, replication.min_insync) == (factor, min_insync)
    assert replication.topic_configs() == {"min.insync.replicas": str(min_insync)}


def test_a_factor_above_the_live_brokers_is_a_one_line_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="METERING_REPLICATION_FACTOR=3") as caught:
        replication_for(1, 3)
    assert "\n" not in str(caught.value)


def test_the_worker_app_replicates_changelogs_as_the_cluster_allows(tmp_path: Path) -> None:
    # given settings with a short session timeout, and a three-broker cluster's replication
    settings = Settings(METERING_HOME=tmp_path, METERING_WORKER_SESSION_TIMEOUT=8)

    # when the worker's Faust app is built
    topology = build(settings, web_enabled=False, replication=Replication(3))

    # then Faust creates its changelogs with 3 copies and min.insync.replicas 2, keeps a
    # standby of each table, and gives a silent worker's partitions away after 8 s
    conf = topology.app.conf
    assert conf.topic_replication_factor == 3
    assert conf.table_standby_replicas == 1
    assert conf.broker_session_timeout == 8
    for table in (topology.accounts, topology.seen, topology.discount_table, topology.positions):
        assert table.extra_topic_configs == {"min.insync.replicas": "2"}, table.name


def test_without_a_cluster_answer_the_app_takes_the_configured_factor_or_one(
    tmp_path: Path,
) -> None:
    unset = build(Settings(METERING_HOME=tmp_path), web_enabled=False)
    configured = build(
        Settings(METERING_HOME=tmp_path, METERING_REPLICATION_FACTOR=3), web_enabled=False
    )
    assert unset.app.conf.topic_replication_factor == 1
    assert configured.app.conf.topic_replication_factor == 3
