"""The sink's Prometheus metrics, in a registry of its own (the process exposes it if it wants).

One registry per sink instance, not the global default: two sinks in one process (tests)
must not collide, and the CLI decides whether and where to serve it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "metering_sink"


class SinkMetrics:
    """Counters of what the sink did; read them with ``value(name, **labels)``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.rows_inserted = Counter(
            f"{PREFIX}_rows_inserted", "Ledger rows inserted into ClickHouse.", registry=r
        )
        self.batches = Counter(f"{PREFIX}_batches", "Batches written and committed.", registry=r)
        self.retries = Counter(
            f"{PREFIX}_retries", "Failed store calls that were retried after a backoff.", registry=r
        )
        self.duplicates = Counter(
            f"{PREFIX}_duplicates_skipped",
            "Entries not inserted because their entry_id was stored already or repeated.",
            registry=r,
        )
        self.poison = Counter(
            f"{PREFIX}_poison_records", "Records that were not a valid LedgerEntry.", registry=r
        )
        self.commit_failures = Counter(
            f"{PREFIX}_commit_failures",
            "Offset commits refused (a rebalance): the new owner re-reads, dedup absorbs it.",
            registry=r,
        )
        self.lag = Gauge(
            f"{PREFIX}_lag_records",
            "Records on the partition after the last committed offset (high watermark − commit).",
            ["topic", "partition"],
            registry=r,
        )
        self.delay = Histogram(
            f"{PREFIX}_delay_seconds",
            "Per batch: seconds from its oldest record's Kafka timestamp to its commit.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.insert_seconds = Histogram(
            f"{PREFIX}_insert_seconds",
            "Seconds per successful insert call.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample, e.g. ``value("rows_inserted_total")`` (0 if absent)."""
        found = self.registry.get_sample_value(f"{PREFIX}_{name}", labels or None)
        return found if found is not None else 0.0
