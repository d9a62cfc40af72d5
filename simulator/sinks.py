"""Where deliveries go: a ``LOG.jsonl`` that ``metering replay`` reads, or Kafka through any
publisher with the gateway's two methods, paced in real time.

The log line is ``{"topic", "key", "timestamp", "value"}`` (``metering/replay/logfile.py``):
``timestamp`` is the simulated delivery instant (the ingest time a Kafka export would
carry), and ``value`` is the record's exact bytes. A malformed payload is written as it is,
raw: a cut-short one breaks its line (the replay dead-letters the line), a valid one missing a
field is read and dead-lettered by the core — the two ways bad bytes reach a log.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import IO, Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from metering.errors import InputError, ServiceUnavailable
from metering.kafka_security import client_options
from schemas.base import format_timestamp
from simulator.events import Delivery, Event, key_of, topic_of
from simulator.pacing import Pacer
from simulator.routing import RoutingGate
from simulator.stats import SimulationStats

MAX_IN_FLIGHT = 2000
"""Sends awaited in one batch: enough to keep the producer's batches full."""


class Publisher(Protocol):
    """What the Kafka sink needs of a gateway publisher (``gateway.Publisher`` has both).

    ``publish`` sends a contract model to its topic, keyed as the contract says; it may
    return before the broker acknowledges (``close``-time flushing is the publisher's).
    ``publish_raw`` sends bytes as they are; ``topic`` is the contract name, without prefix.
    """

    async def publish(self, event: Any) -> Any: ...

    async def publish_raw(self, topic: str, key: bytes, value: bytes) -> Any: ...


def log_line(delivery: Delivery) -> bytes:
    """One ``LOG.jsonl`` line for ``delivery``, newline included."""
    head = json.dumps(
        {"topic": delivery.topic, "key": delivery.key, "timestamp": format_timestamp(delivery.at)},
        separators=(",", ":"),
    )
    return head[:-1].encode("utf-8") + b',"value":' + delivery.payload() + b"}\n"


def write_log(
    deliveries: Iterable[Delivery],
    output: IO[bytes],
    gate: RoutingGate | None = None,
    stats: SimulationStats | None = None,
) -> SimulationStats:
    """Write every delivery the gate admits as a log line; returns what was written."""
    stats = stats if stats is not None else SimulationStats()
    for delivery in deliveries:
        if gate is not None and not gate.admit(delivery):
            continue
        output.write(log_line(delivery))
        stats.record(delivery)
    if gate is not None:
        gate.settle()
    return stats


def write_log_file(
    deliveries: Iterable[Delivery],
    path: Path,
    gate: RoutingGate | None = None,
    stats: SimulationStats | None = None,
) -> SimulationStats:
    """``write_log`` to ``path`` (created or truncated)."""
    try:
        output = path.open("wb")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    with output:
        return write_log(deliveries, output, gate, stats)


class KafkaSink:
    """Publishes deliveries in order, each no sooner than its paced wall time.

    Per delivery: 1. wait until it is due (``Pacer``); 2. ask the gate, if any, whether the
    gateway sends it (the route is read when the request would be served); 3. publish it —
    raw bytes through ``publish_raw``, a model through ``publish``; 4. count it.
    """

    def __init__(
        self,
        publisher: Publisher,
        pacer: Pacer,
        gate: RoutingGate | None = None,
        stats: SimulationStats | None = None,
    ) -> None:
        self.publisher = publisher
        self.pacer = pacer
        self.gate = gate
        self.stats = stats if stats is not None else SimulationStats()

    async def run(self, deliveries: Iterable[Delivery]) -> SimulationStats:
        for delivery in deliveries:
            # Step 1.
            await self.pacer.wait_until(delivery.at)
            # Step 2.
            if self.gate is not None and not self.gate.admit(delivery):
                continue
            # Step 3.
            if isinstance(delivery.value, bytes):
                await self.publisher.publish_raw(
                    delivery.topic, delivery.key.encode("utf-8"), delivery.value
                )
            else:
                await self.publisher.publish(delivery.value)
            # Step 4.
            self.stats.record(delivery)
        if self.gate is not None:
            self.gate.settle()
        return self.stats


class _KafkaPublisher:
    """A minimal ``Publisher`` over an idempotent ``AIOKafkaProducer`` (until the gateway's own
    publisher replaces it): topic = prefix + the event's contract topic; key = account id, or
    model for a discount. Sends are pipelined and awaited in batches; ``close`` flushes."""

    def __init__(self, producer: AIOKafkaProducer, topic_prefix: str, where: str) -> None:
        self._producer = producer
        self._prefix = topic_prefix
        self._where = where
        self._in_flight: list[Any] = []

    async def publish(self, event: Event) -> None:
        value = event.model_dump_json().encode("utf-8")
        await self._send(topic_of(event), key_of(event).encode("utf-8"), value)

    async def publish_raw(self, topic: str, key: bytes, value: bytes) -> None:
        await self._send(topic, key, value)

    async def drain(self) -> None:
        """Wait for every send so far to be acknowledged."""
        pending, self._in_flight = self._in_flight, []
        try:
            for future in pending:
                await future
        except KafkaError as exc:
            raise self._unavailable(exc) from exc

    async def _send(self, topic: str, key: bytes, value: bytes) -> None:
        try:
            future = await self._producer.send(self._prefix + topic, value, key=key)
        except KafkaError as exc:
            raise self._unavailable(exc) from exc
        self._in_flight.append(future)
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            await self.drain()

    def _unavailable(self, exc: BaseException) -> ServiceUnavailable:
        return ServiceUnavailable(f"kafka at {self._where}: {type(exc).__name__}: {exc}")


@contextlib.asynccontextmanager
async def kafka_publisher(bootstrap_servers: str, topic_prefix: str) -> AsyncIterator[Publisher]:
    """An idempotent Kafka publisher, started; on a clean exit every send is acknowledged."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        enable_idempotence=True,
        linger_ms=5,
        **client_options(),  # METERING_KAFKA_* of this process
    )
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise ServiceUnavailable(
            f"kafka at {bootstrap_servers}: {type(exc).__name__}: {exc}"
        ) from exc
    publisher = _KafkaPublisher(producer, topic_prefix, bootstrap_servers)
    try:
        yield publisher
        await publisher.drain()
    finally:
        await producer.stop()
