"""What a single-node KRaft broker is told: its ports and its ``server.properties``.

Rendering is pure (ports and paths in, text out) so a unit test can pin every line that matters:
both listeners bound to 127.0.0.1, replication factors and ISR at 1, no rebalance delay.
"""

from __future__ import annotations

import base64
import socket
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
NODE_ID = 1


@dataclass(frozen=True)
class BrokerPorts:
    """The two TCP ports of one broker: clients (``PLAINTEXT``) and the KRaft quorum."""

    broker: int
    controller: int

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.broker}"


def free_ports(count: int, host: str = HOST) -> list[int]:
    """``count`` distinct ports that were free on ``host`` a moment ago.

    All sockets are held open until every port is picked, so the ports are distinct; another
    process may still take one before the broker binds it (the launcher retries on that).
    """
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def pick_ports() -> BrokerPorts:
    """Fresh free ports for one broker."""
    broker, controller = free_ports(2)
    return BrokerPorts(broker=broker, controller=controller)


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64, unpadded, as Kafka makes them."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


def stored_cluster_id(data_dir: Path) -> str | None:
    """The cluster id a formatted ``data_dir`` belongs to (its ``meta.properties``), if any.

    Formatting again must reuse it: Kafka refuses a storage formatted for another cluster.
    """
    try:
        lines = (data_dir / "meta.properties").read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.strip() == "cluster.id":
            return value.strip()
    return None


def server_properties(ports: BrokerPorts, data_dir: Path, *, partitions: int = 1) -> dict[str, str]:
    """The broker's settings, in the order they are written."""
    return {
        # One JVM plays both KRaft roles; node 1 is the only voter.
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@{HOST}:{ports.controller}",
        # Loopback only: nothing outside this machine can reach the broker.
        "listeners": f"PLAINTEXT://{HOST}:{ports.broker},CONTROLLER://{HOST}:{ports.controller}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{ports.broker}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        # A single node cannot hold more than one replica of anything.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "min.insync.replicas": "1",
        "default.replication.factor": "1",
        # Few internal partitions: the first consumer group comes up in a second, not ten.
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.num.partitions": "4",
        # Tests start groups constantly; the 3 s default delay would only slow them.
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "num.partitions": str(partitions),
    }


def render_properties(values: dict[str, str]) -> str:
    """``key=value`` lines as Java's ``Properties`` reads them (backslashes doubled)."""
    return "".join(
        f"{key}={value.replace(chr(92), chr(92) * 2)}\n" for key, value in values.items()
    )


# Everything the broker logs goes to stdout, which the launcher sends to `kafka.log`.
LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
"""
