"""The worker's Prometheus metrics: what came in, what went out, and why."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from billing.engine import Result
from schemas import topics


class WorkerMetrics:
    """Counters on their own registry (one per worker, served at ``GET /metrics``)."""

    def __init__(self) -> None:
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
        self.duplicates = Counter(
            "metering_duplicates", "Inputs already applied", registry=self.registry
        )

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
            elif item.topic == topics.ROUTING:
                self.routing.labels(getattr(value, "route", "")).inc()
