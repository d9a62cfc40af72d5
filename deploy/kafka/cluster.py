"""``LocalKafkaCluster``: a KRaft cluster of N nodes on loopback, one JVM per node.

For replication and failover tests, and ``metering kafka up --nodes 3``. Every node plays both
roles (controller and broker), every node is a voter of the quorum, and all share one cluster
id; each has its own ports, process group and work directory ``node-<id>/`` (properties,
``data/``, ``kafka.log``). A node can be stopped (SIGTERM: controlled shutdown; or SIGKILL)
and started again with its ports and data, to test what clients do meanwhile and how it
catches up. Rendering (``node_properties``) is pure; the process handling is
``deploy.kafka.process`` and ``deploy.kafka.jvm``, as for the single broker.
"""

from __future__ import annotations

import atexit
import logging
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.kafka import config, process
from deploy.kafka.jvm import Jvm, log_tail, logged_version
from deploy.kafka.launch import JvmLauncher
from deploy.kafka.probe import broker_ids, run_sync
from deploy.kafka.state import BrokerState
from metering.errors import ServiceUnavailable
from metering.kafka_security import KafkaSecurity
from streams.admin import replication_for

log = logging.getLogger(__name__)

_BIND_FAILED = "Address already in use"
POLL_S = 0.2
"""Interval between metadata requests while waiting for nodes to register."""
PLAINTEXT = KafkaSecurity()
"""The cluster's listeners, whatever this process's environment asks its clients to use."""


@dataclass(frozen=True)
class ClusterNode:
    """One node: its id (1…N), its two ports and its work directory."""

    node_id: int
    ports: config.BrokerPorts
    work_dir: Path

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    @property
    def props_path(self) -> Path:
        return self.work_dir / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "kafka.log"


def plan_nodes(count: int, work_dir: Path) -> list[ClusterNode]:
    """``count`` nodes with fresh free ports, numbered from 1, each in ``work_dir/node-<id>``."""
    ports = config.free_ports(2 * count)
    return [
        ClusterNode(n, config.BrokerPorts(ports[2 * i], ports[2 * i + 1]), work_dir / f"node-{n}")
        for i, n in enumerate(range(1, count + 1))
    ]


def quorum_voters(nodes: Sequence[ClusterNode]) -> str:
    """``controller.quorum.voters``: every node, ``id@127.0.0.1:<controller port>``."""
    return ",".join(f"{n.node_id}@{config.HOST}:{n.ports.controller}" for n in nodes)


def bootstrap_servers(nodes: Sequence[ClusterNode]) -> str:
    """Every node's client address: a client reaches the cluster while any one answers."""
    return ",".join(n.ports.bootstrap_servers for n in nodes)


def node_properties(
    node: ClusterNode, nodes: Sequence[ClusterNode], *, partitions: int = 1
) -> dict[str, str]:
    """``server.properties`` of ``node`` in the cluster ``nodes``.

    The single broker's settings (loopback listeners, no rebalance delay, …) with this node's
    id, every node a voter, and Kafka's own topics (offsets, transactions) and the default for
    new topics replicated as the pipeline's topics are (``streams.admin.replication_for``).
    """
    replication = replication_for(len(nodes))
    factor, min_insync = str(replication.factor), str(replication.min_insync)
    return {
        **config.server_properties(node.ports, node.data_dir, partitions=partitions),
        "node.id": str(node.node_id),
        "controller.quorum.voters": quorum_voters(nodes),
        "offsets.topic.replication.factor": factor,
        "transaction.state.log.replication.factor": factor,
        "transaction.state.log.min.isr": min_insync,
        "min.insync.replicas": min_insync,
        "default.replication.factor": factor,
    }


class LocalKafkaCluster(JvmLauncher):
    """N nodes. ``with LocalKafkaCluster(libs, nodes=3) as cluster: cluster.bootstrap_servers``.

    ``work_dir`` holds one ``node-<id>/`` per node; by default a temporary directory, removed
    after a clean stop (kept when start-up failed, so the logs errors name are still there).
    A given directory is never removed, and its data survives a restart of the cluster.
    """

    WORK_PREFIX = "metering-kafka-cluster-"
    WHAT = "the local Kafka cluster"

    def __init__(
        self,
        libs: Path,
        *,
        nodes: int = 3,
        work_dir: Path | None = None,
        java: str = "java",
        heap: str = "384m",
        partitions: int = 1,
        startup_timeout_s: float = 120.0,
        stop_timeout_s: float = 30.0,
        die_with_parent: bool = True,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        super().__init__(
            libs, work_dir=work_dir, java=java, heap=heap, partitions=partitions,
            startup_timeout_s=startup_timeout_s, stop_timeout_s=stop_timeout_s,
            die_with_parent=die_with_parent,
        )  # fmt: skip
        self.size = nodes
        self._jvm: Jvm | None = None
        self._nodes: list[ClusterNode] = []
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    # -- what a caller reads --------------------------------------------------------------

    @property
    def nodes(self) -> list[ClusterNode]:
        if not self._nodes:
            raise RuntimeError("LocalKafkaCluster is not started")
        return list(self._nodes)

    def node(self, node_id: int) -> ClusterNode:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(f"no node {node_id} in a cluster of {self.size}")

    @property
    def bootstrap_servers(self) -> str:
        """Every node's ``127.0.0.1:<port>``, comma-separated."""
        return bootstrap_servers(self.nodes)

    def pid(self, node_id: int) -> int | None:
        proc = self._procs.get(node_id)
        return proc.pid if proc is not None else None

    def is_running(self, node_id: int) -> bool:
        proc = self._procs.get(node_id)
        return proc is not None and proc.poll() is None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> LocalKafkaCluster:
        """Start every node and return once each is registered and unfenced.

        1. find java and the broker jar; prepare the work directory;
        2. pick free ports for every node and write each node's ``server.properties``;
        3. format every node's storage with one cluster id (kept when already formatted);
        4. spawn every JVM, each in its own process group, output to its ``kafka.log``;
        5. poll until a metadata request names every node, a JVM exits, or the time is up;
        6. read the version from a log and register the ``atexit`` stop.
        A port taken between steps 2 and 4 (the only race) is retried once with new ports.
        """
        if self._procs:
            raise RuntimeError("LocalKafkaCluster is already started")
        self._jvm = self._prepare_jvm()  # Step 1.
        work = self.work_dir
        started = time.monotonic()
        for attempt in (1, 2):
            # Step 2.
            self._nodes = plan_nodes(self.size, work)
            for node in self._nodes:
                node.work_dir.mkdir(parents=True, exist_ok=True)
                values = node_properties(node, self._nodes, partitions=self.partitions)
                node.props_path.write_text(config.render_properties(values))
            # Step 3.
            cluster_id = (
                config.stored_cluster_id(self._nodes[0].data_dir) or config.new_cluster_id()
            )
            for node in self._nodes:
                self._jvm.format_storage(node.props_path, node.data_dir, node.log_path, cluster_id)
            try:
                # Step 4.
                for node in self._nodes:
                    self._spawn(node)
                # Step 5.
                self._wait_registered({n.node_id for n in self._nodes}, self.startup_timeout_s)
            except BaseException as exc:  # Ctrl-C included: never leave a JVM behind
                self._stop_all(grace_s=10.0)
                bind_failed = any(_BIND_FAILED in log_tail(n.log_path) for n in self._nodes)
                if isinstance(exc, ServiceUnavailable) and attempt == 1 and bind_failed:
                    log.warning("kafka cluster: a port was taken during start-up; retrying")
                    continue
                raise
            break
        # Step 6.
        self._version = logged_version(self._nodes[0].log_path)
        atexit.register(self.stop)
        log.info(
            "kafka cluster: %d nodes of Apache Kafka %s answering at %s after %.1fs (%s)",
            self.size, self.version, self.bootstrap_servers, time.monotonic() - started, work,
        )  # fmt: skip
        return self

    def stop_node(self, node_id: int, *, kill: bool = False) -> None:
        """Stop one node: SIGTERM (controlled shutdown; SIGKILL after ``stop_timeout_s``), or
        SIGKILL at once with ``kill=True`` (a crash). Its ports and data are kept."""
        proc = self._procs.pop(node_id, None)
        if proc is None or proc.poll() is not None:
            return
        if kill:
            process.signal_group(proc.pid, signal.SIGKILL)
        else:
            process.stop_group(
                proc.pid, lambda t: process.wait_gone(proc.pid, t), self.stop_timeout_s
            )
        proc.wait()

    def start_node(self, node_id: int, timeout_s: float | None = None) -> None:
        """Start a stopped node again, same ports and data; return once it is registered."""
        node = self.node(node_id)
        if self.is_running(node_id):
            raise RuntimeError(f"node {node_id} is running")
        self._spawn(node)
        try:
            self._wait_registered({node_id}, timeout_s or self.startup_timeout_s)
        except BaseException:
            self.stop_node(node_id, kill=True)
            raise

    def stop(self) -> None:
        """Stop every node (SIGTERM to each group, SIGKILL after ``stop_timeout_s``). Idempotent."""
        atexit.unregister(self.stop)
        if not self._procs:
            return
        self._stop_all(self.stop_timeout_s)
        self._remove_work_dir()

    def detach(self) -> list[BrokerState]:
        """Let every node outlive this process; return what ``down`` needs to find each."""
        if self._die_with_parent:
            raise RuntimeError("detach() needs LocalKafkaCluster(..., die_with_parent=False)")
        if not self._procs:
            raise RuntimeError("LocalKafkaCluster is not started")
        atexit.unregister(self.stop)
        started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        states = [
            BrokerState(
                pid=self._procs[node.node_id].pid,
                broker_port=node.ports.broker,
                controller_port=node.ports.controller,
                bootstrap_servers=node.ports.bootstrap_servers,
                version=self.version,
                log_path=str(node.log_path),
                work_dir=str(node.work_dir),
                started_at=started_at,
            )
            for node in self._nodes
        ]
        self._procs = {}
        return states

    # -- steps ----------------------------------------------------------------------------

    def _spawn(self, node: ClusterNode) -> None:
        assert self._jvm is not None
        self._procs[node.node_id] = self._jvm.spawn_broker(
            node.props_path, node.log_path, die_with_parent=self._die_with_parent
        )

    def _wait_registered(self, wanted: set[int], timeout_s: float) -> None:
        """Poll until a metadata response names every node of ``wanted``."""
        deadline = time.monotonic() + timeout_s
        while True:
            for node_id in wanted:
                proc = self._procs[node_id]
                if proc.poll() is not None:
                    raise ServiceUnavailable(
                        f"Kafka node {node_id} exited with code {proc.returncode} during "
                        f"start-up; see {self.node(node_id).log_path}"
                    )
            remaining = deadline - time.monotonic()
            timeout = max(min(remaining, 5.0), 0.5)
            live = run_sync(broker_ids(self.bootstrap_servers, timeout, PLAINTEXT))
            if wanted <= live:
                return
            if time.monotonic() >= deadline:
                missing = sorted(wanted - live)
                raise ServiceUnavailable(
                    f"Kafka node(s) {missing} did not register within {timeout_s:.0f}s; see "
                    f"{self.node(missing[0]).log_path}"
                )
            time.sleep(POLL_S)

    def _stop_all(self, grace_s: float) -> None:
        """Stop every running node together (``process.stop_groups``) and reap the JVMs."""
        procs, self._procs = self._procs, {}
        running = {p.pid: node_id for node_id, p in procs.items() if p.poll() is None}
        for pid in process.stop_groups(list(running), grace_s):
            log.warning(
                "kafka cluster: node %d ignored SIGTERM for %.0fs, killed", running[pid], grace_s
            )
        for proc in procs.values():
            proc.wait()
