"""The worker's Prometheus metrics: what came in, what went out, and why; how far behind it is.

Counters are counted per record (``observe``). What only exists at a point in time — the
input records not applied yet, how overdue the next reset tick is — is read at scrape time
from callables the worker hands over (``watch``), so nothing polls in between.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from faust.exceptions import ConsumerNotStarted
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from billing.engine import Result
from schemas import topics
from schemas.quota import QuotaEvent

Lag = Callable[[], Mapping[tuple[str, int], int]]
"""Records not applied yet per input (topic, partition) this worker owns."""
NextDeadline = Callable[[], datetime | None]
"""The earliest reset or term end the tick timer has not ticked yet, if any."""


class WorkerMetrics:
    """Counters on their own registry (one per worker, served at ``GET /metrics``)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.registry = CollectorRegistry()
        self.events_in = Counter(
            "metering_events_in", "Input records read", ["topic"], registry=self.registry
        )
        self.ledger_out = Counter(
            "metering_ledger_entries", "Ledger entries written", ["funding"], registry=self.registry
        )
        self.leakage = Counter(
            "metering_leakage_requests", "Requests served unfunded", registry=self.registry
        )
        self.dlq = Counter(
            "metering_dlq", "Records dead-lettered", ["code"], registry=self.registry
        )
        self.quota = Counter(
            "metering_quota_events",
            "Windows exhausted or restored",
            ["type"],
            registry=self.registry,
        )
        self.routing = Counter(
            "metering_routing_changes",
            "Routing states published",
            ["route"],
            registry=self.registry,
        )
        self.reread = Counter(
            "metering_input_records_reread",
            "Input records the consumer skipped and the worker re-read from the broker",
            registry=self.registry,
        )
        self.refetched = Counter(
            "metering_input_partitions_refetched",
            "Times a stalled input partition was fetched again from its position",
            registry=self.registry,
        )
        self.discount_wait = Histogram(
            "metering_discount_fence_wait_seconds",
            "Seconds a batch of requests waited for discount changes published before it",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
            registry=self.registry,
        )
        self.held = Gauge(
            "metering_input_records_held",
            "Input records delivered and waiting for a topic of their partition that is behind "
            "its end, to be folded in publication order",
            registry=self.registry,
        )
        self.order_forced = Counter(
            "metering_input_order_forced",
            "Input records folded out of publication order: a topic of their partition stayed "
            "behind for longer than the worker holds records",
            registry=self.registry,
        )
        self.discount_gave_up = Counter(
            "metering_discount_fence_gave_up",
            "Discount changes requests stopped waiting for (charged without them)",
            registry=self.registry,
        )
        self.duplicates = Counter(
            "metering_duplicates", "Inputs already applied", registry=self.registry
        )
        self.restore_delay = Histogram(
            "metering_restore_delay_seconds",
            "Wall-clock seconds from a window's reset to the worker emitting its restore",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
            registry=self.registry,
        )

    def watch(self, lag: Lag, next_deadline: NextDeadline) -> None:
        """Export the worker's backlog and its tick timer's delay, read at each scrape."""
        self.registry.register(_Watched(lag, next_deadline, self.clock))

    def observe(self, topic: str, result: Result) -> None:
        self.events_in.labels(topic).inc()
        if result.duplicate:
            self.duplicates.inc()
        for item in result.emitted:
            value = item.value
            if item.topic == topics.LEDGER:
                funding = getattr(value, "funding", "")
                self.ledger_out.labels(funding).inc()
                if funding == "unfunded":
                    self.leakage.inc()
            elif item.topic == topics.DLQ:
                self.dlq.labels(getattr(value, "code", "")).inc()
            elif item.topic == topics.QUOTA:
                self.quota.labels(getattr(value, "type", "")).inc()
                if isinstance(value, QuotaEvent):
                    self._observe_restore(value)
            elif item.topic == topics.ROUTING:
                self.routing.labels(getattr(value, "route", "")).inc()

    def _observe_restore(self, event: QuotaEvent) -> None:
        """A reset's restore: how long after the reset instant (``at``) it was emitted. A
        backlog replayed after downtime shows here too: those restores were late as well."""
        if event.type == "restored" and event.reason == "reset":
            self.restore_delay.observe(max(0.0, self.clock() - event.at.timestamp()))


def input_lag(
    consumer: Any, inputs: Collection[str], expected: Callable[[str, int], int | None]
) -> dict[tuple[str, int], int]:
    """Per input partition assigned to ``consumer``: its high watermark minus the next offset
    to apply (``expected``, from the worker's positions). A partition where nothing was
    applied yet counts from offset 0: an upper bound until its first record is applied."""
    try:
        assigned = consumer.assignment()
    except ConsumerNotStarted:
        return {}  # scraped before the worker joined its group: no partitions yet
    lag = {}
    for tp in assigned:
        if tp.topic not in inputs:
            continue  # changelogs and standbys: restored by Faust, not applied by the worker
        high = consumer.highwater(tp)
        if high is None:
            continue  # nothing fetched yet: unknown, not zero
        lag[(tp.topic, tp.partition)] = max(0, high - (expected(tp.topic, tp.partition) or 0))
    return lag


class _Watched(Collector):
    """Gauges computed when Prometheus scrapes (custom collector, see ``WorkerMetrics.watch``)."""

    def __init__(self, lag: Lag, next_deadline: NextDeadline, clock: Callable[[], float]) -> None:
        self.lag, self.next_deadline, self.clock = lag, next_deadline, clock

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())  # names only: registering must not call the worker

    def collect(self) -> Iterator[Metric]:
        lag, overdue = self._families()
        for (topic, partition), records in sorted(self.lag().items()):
            lag.add_metric([topic, str(partition)], records)
        deadline = self.next_deadline()
        late = 0.0 if deadline is None else self.clock() - deadline.astimezone(UTC).timestamp()
        overdue.add_metric([], max(0.0, late))
        return iter((lag, overdue))

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "metering_consumer_lag_records",
                "Input records on the partition not applied yet (high watermark − next offset)",
                labels=["topic", "partition"],
            ),
            GaugeMetricFamily(
                "metering_reset_overdue_seconds",
                "How long the earliest due reset or term end has waited for its tick (0: none)",
            ),
        )
