"""The local KRaft cluster's rendered configuration, without starting a JVM."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.kafka import config
from deploy.kafka.cluster import (
    ClusterNode,
    LocalKafkaCluster,
    bootstrap_servers,
    node_properties,
    plan_nodes,
    quorum_voters,
)
from metering.errors import ServiceUnavailable


def _nodes(count: int, tmp_path: Path) -> list[ClusterNode]:
    return [
        ClusterNode(n, config.BrokerPorts(19000 + 10 * n, 19001 + 10 * n), tmp_path / f"node-{n}")
        for n in range(1, count + 1)
    ]


def _rendered(node: ClusterNode, nodes: list[ClusterNode]) -> dict[str, str]:
    text = config.render_properties(node_properties(node, nodes, partitions=4))
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_three_nodes_are_one_quorum_each_with_its_own_id_ports_and_data(tmp_path: Path) -> None:
    # given three nodes
    nodes = _nodes(3, tmp_path)

    # when each node's server.properties is rendered
    props = [_rendered(node, nodes) for node in nodes]

    # then every node plays both roles, lists all three as voters, and owns its id and storage
    voters = "1@127.0.0.1:19011,2@127.0.0.1:19021,3@127.0.0.1:19031"
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert {p["controller.quorum.voters"] for p in props} == {voters}
    assert {p["process.roles"] for p in props} == {"broker,controller"}
    assert [p["log.dirs"] for p in props] == [str(n.data_dir) for n in nodes]
    # on loopback only, each on its own ports
    assert props[1]["listeners"] == "PLAINTEXT://127.0.0.1:19020,CONTROLLER://127.0.0.1:19021"
    assert props[1]["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19020"
    assert all("0.0.0.0" not in value for p in props for value in p.values())
    assert props[0]["num.partitions"] == "4"


def test_three_nodes_replicate_everything_three_times_and_need_two_acknowledgements(
    tmp_path: Path,
) -> None:
    nodes = _nodes(3, tmp_path)
    props = _rendered(nodes[0], nodes)
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "default.replication.factor",
    ):
        assert props[key] == "3", key
    assert props["min.insync.replicas"] == "2"
    assert props["transaction.state.log.min.isr"] == "2"


def test_a_one_node_cluster_renders_exactly_like_the_single_broker(
    tmp_path: Path,
) -> None:
    # given one node
    (node,) = _nodes(1, tmp_path)

    # then its settings are the single broker's, replication 1 and ISR 1 included
    single = config.server_properties(node.ports, node.data_dir, partitions=4)
    assert node_properties(node, [node], partitions=4) == single


def test_planned_nodes_get_distinct_free_ports_and_their_own_directories(tmp_path: Path) -> None:
    nodes = plan_nodes(3, tmp_path)
    ports = [p for n in nodes for p in (n.ports.broker, n.ports.controller)]
    assert len(set(ports)) == 6
    assert [n.work_dir for n in nodes] == [tmp_path / f"node-{n}" for n in (1, 2, 3)]
    assert bootstrap_servers(nodes) == ",".join(f"127.0.0.1:{n.ports.broker}" for n in nodes)
    assert quorum_voters(nodes).count("@127.0.0.1:") == 3


def test_cluster_without_java_is_one_line_error_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    # given jars but no java
    (tmp_path / "kafka_2.13-3.9.2.jar").touch()
    cluster = LocalKafkaCluster(tmp_path, java="no-such-java-here", work_dir=tmp_path / "work")

    # then starting says what is missing, in one line
    with pytest.raises(ServiceUnavailable, match="no-such-java-here") as caught:
        cluster.start()
    assert "\n" not in str(caught.value)
    assert not cluster.is_running(1)


def test_a_cluster_of_no_nodes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one node"):
        LocalKafkaCluster(tmp_path, nodes=0)
