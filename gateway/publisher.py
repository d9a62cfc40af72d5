"""Publishing input events from a gateway: validated first, then sent by an idempotent producer.

Why validate here: the pipeline would dead-letter a bad event anyway, but only the gateway can
fix it, and it learns of it at once this way (``InvalidEvent`` before a byte is sent).
Why idempotent with ``acks=all``: the broker then writes each record once even when the
producer retries internally, and an acknowledged record survives a broker failure.
Why a deadline: an idempotent aiokafka producer retries retriable errors forever, so without
``delivery_timeout_s`` a publish to an unreachable broker would never return.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata

from gateway.errors import BrokerUnavailable, PublishFailed
from gateway.events import Event, Outgoing, prepare
from metering.kafka_security import KafkaSecurity, client_options

T = TypeVar("T")


class Producer(Protocol):
    """The slice of ``AIOKafkaProducer`` the publisher uses (a fake implements it in unit tests)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> asyncio.Future[Any]: ...


class Publisher:
    """Async publisher of input events (requests, subscription events, discounts, adjustments).

    ``publish(event)`` returns once the broker acknowledged the record (``acks=all``), or
    raises:

    - ``InvalidEvent`` if the event breaks its topic's contract; nothing was sent.
    - ``PublishFailed`` if the broker refused it, or did not acknowledge it within
      ``delivery_timeout_s``; the Kafka error is its ``__cause__``. The record may still have
      been written.

    Retrying is publishing the same event again: the pipeline deduplicates on ``request_id``
    (adjustments on ``adjustment_id``, subscription and discount events on their content), so a
    request published twice is charged once. Do not mint a new ``request_id`` for a retry.

    ``security`` is how the producer logs in (``KafkaSecurity.sasl_ssl(...)``); without it the
    ``METERING_KAFKA_*`` environment is read at ``start()`` (PLAINTEXT when unset).

    The topic is picked from the event's fields (``gateway.events.topic_for``); the key is the
    ``account_id`` (discount changes: the ``model``), so one account's events stay in order
    on one partition.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic_prefix: str = "",
        linger_ms: int = 5,
        delivery_timeout_s: float = 30.0,
        producer_factory: Callable[[], Producer] | None = None,
        security: KafkaSecurity | None = None,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._security = security  # None: the METERING_KAFKA_* environment, read at start()
        self._prefix = topic_prefix
        self._linger_ms = linger_ms
        self._delivery_timeout_s = delivery_timeout_s
        self._factory = producer_factory or self._kafka_producer
        self._producer: Producer | None = None

    def _kafka_producer(self) -> Producer:
        producer: Producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap_servers,
            client_id="metering-gateway",
            enable_idempotence=True,
            acks="all",
            linger_ms=self._linger_ms,
            **client_options(self._security),
        )
        return producer

    async def start(self) -> None:
        """Connect to the broker; raises ``BrokerUnavailable`` if it cannot be reached."""
        if self._producer is not None:
            return
        producer = self._factory()
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()  # closes the half-open client
            raise BrokerUnavailable(f"kafka at {self._bootstrap_servers}: {exc}") from exc
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        """Flush what was handed to the producer, then close it."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def publish(self, event: Event) -> RecordMetadata:
        """Validate, send and wait for the acknowledgement of one event (see the class doc)."""
        return (await self.publish_many([event]))[0]

    async def publish_many(self, events: Iterable[Event]) -> list[RecordMetadata]:
        """Send every event, then wait for all acknowledgements: one round trip, not one each.

        1. Validate every event; one invalid event raises ``InvalidEvent`` and nothing is sent.
        2. Hand each record to the producer in the given order (same key → same partition →
           same order on the topic).
        3. Wait for every acknowledgement, all within ``delivery_timeout_s``.

        Metadata come back in the events' order. On failure ``PublishFailed`` names the first
        event not acknowledged and how many were not; the others may be written. Publish the
        whole batch again: the pipeline drops the repeats.
        """
        # Step 1.
        batch = [prepare(event) for event in events]
        if not batch:
            return []
        producer = self._running(batch[0])
        futures: list[asyncio.Future[Any]] = []
        unsent: BaseException | None = None
        try:
            async with asyncio.timeout(self._delivery_timeout_s):
                # Step 2.
                for outgoing in batch:
                    topic = self._prefix + outgoing.topic
                    try:
                        futures.append(await producer.send(topic, outgoing.value, key=outgoing.key))
                    except KafkaError as exc:  # e.g. no metadata for the topic, buffer full
                        unsent = exc
                        break
                # Step 3.
                if futures:
                    await asyncio.wait(futures)
        except TimeoutError as exc:
            unsent = unsent or exc
        return self._outcome(batch, futures, unsent)

    def _running(self, first: Outgoing) -> Producer:
        if self._producer is None:
            topic = self._prefix + first.topic
            reason = "publisher is not started (call start() or use `async with`)"
            raise PublishFailed(topic, first.event_id, reason)
        return self._producer

    def _outcome(
        self,
        batch: list[Outgoing],
        futures: list[asyncio.Future[Any]],
        unsent: BaseException | None,
    ) -> list[RecordMetadata]:
        """Each event's metadata, or ``PublishFailed`` for the first that has none.

        ``unsent`` is why the events after the last future were never handed over.
        """
        results: list[RecordMetadata] = []
        first: tuple[Outgoing, BaseException] | None = None
        failed = 0
        for index, outgoing in enumerate(batch):
            error: BaseException | None
            if index >= len(futures):
                error = unsent or TimeoutError()
            elif not futures[index].done():  # the deadline passed first
                futures[index].cancel()  # does not unsend it; only stops waiting
                error = TimeoutError()
            elif futures[index].cancelled():  # by the producer (closed while it waited)
                error = KafkaError("the send was cancelled before it was acknowledged")
            else:
                error = futures[index].exception()
            if error is None:
                results.append(futures[index].result())
                continue
            failed += 1
            first = first or (outgoing, error)
        if first is None:
            return results
        outgoing, error = first
        reason = _describe(error, self._delivery_timeout_s)
        if len(batch) > 1:
            reason += f" ({failed} of {len(batch)} events not acknowledged)"
        raise PublishFailed(self._prefix + outgoing.topic, outgoing.event_id, reason) from error


def _describe(error: BaseException, timeout_s: float) -> str:
    if isinstance(error, TimeoutError):
        return f"not acknowledged within {timeout_s:g} s (it may still be written)"
    return f"{type(error).__name__}: {error}"


class SyncPublisher:
    """A blocking ``Publisher`` for threaded gateways: its own event loop in a daemon thread.

    Connects on construction (``BrokerUnavailable`` if it cannot); ``publish`` blocks until the
    acknowledgement and returns the metadata or raises as ``Publisher.publish`` does. Safe to
    call from several threads. ``close()`` (or leaving the ``with`` block) flushes and stops.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic_prefix: str = "",
        linger_ms: int = 5,
        delivery_timeout_s: float = 30.0,
        producer_factory: Callable[[], Producer] | None = None,
        security: KafkaSecurity | None = None,
    ) -> None:
        self._publisher = Publisher(
            bootstrap_servers,
            topic_prefix=topic_prefix,
            linger_ms=linger_ms,
            delivery_timeout_s=delivery_timeout_s,
            producer_factory=producer_factory,
            security=security,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="metering-gateway-publisher", daemon=True
        )
        self._thread.start()
        self._closed = False
        try:
            self._call(self._publisher.start())
        except BaseException:
            self._stop_loop()
            raise

    def publish(self, event: Event) -> RecordMetadata:
        """Blocking ``Publisher.publish``."""
        return self.publish_many([event])[0]

    def publish_many(self, events: Iterable[Event]) -> list[RecordMetadata]:
        """Blocking ``Publisher.publish_many``."""
        batch = list(events)
        if self._closed:
            first = prepare(batch[0]) if batch else None  # an invalid event still says why
            if first is None:
                return []
            raise PublishFailed(first.topic, first.event_id, "publisher is closed")
        return self._call(self._publisher.publish_many(batch))

    def close(self) -> None:
        """Flush and stop the producer, then end the loop's thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._call(self._publisher.stop())
        finally:
            self._stop_loop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _stop_loop(self) -> None:
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()
