"""The Faust app, its topics and its tables, built from settings.

Input topics are keyed by ``account_id`` and share one partition count, so Faust co-partitions
them: an account's requests, lifecycle events, adjustments and ticks reach the same agent
instance in log order per topic, and its table entries live in that partition's changelog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faust

from metering.kafka_security import KafkaSecurity
from metering.settings import Settings
from schemas import topics
from streams.admin import Replication


@dataclass(frozen=True)
class ProducerSettings:
    """How the worker's producer batches its outputs (also the throughput baseline's)."""

    linger_s: float
    max_batch_size: int
    compression: str | None


PRODUCER = ProducerSettings(linger_s=0.005, max_batch_size=1 << 20, compression=None)
"""Up to 1 MiB per partition per request (aiokafka's default is 16 KiB): a worker's batch of
outputs leaves in a few requests. No compression: on a local network it only costs CPU."""

FETCH_BYTES_PER_PARTITION = 8 << 20
"""Faust's default is 1 MiB: a recovery then fetches about a thousand account values per
round trip, and a cold start of 100k accounts took 23 s; with 8 MiB, 13 s (more gave no
more: docs/BENCHMARKS.md, "State scale"). A live batch stays bounded by ``take_events``."""


@dataclass
class Topology:
    app: faust.App
    inputs: Any
    discounts: Any
    outputs: dict[str, Any]
    ticks: Any
    accounts: Any
    seen: Any
    discount_table: Any
    positions: Any
    prefix: str
    bootstrap_servers: str
    security: KafkaSecurity = field(default_factory=KafkaSecurity)

    def changelogs(self) -> list[str]:
        """The full names of the tables' changelog topics (``streams.admin`` creates them)."""
        tables = (self.accounts, self.seen, self.discount_table, self.positions)
        return [t.changelog_topic.get_topic_name() for t in tables]

    def unprefixed(self, name: str) -> str:
        return name[len(self.prefix) :] if name.startswith(self.prefix) else name


def build(
    settings: Settings,
    *,
    app_id: str = "metering-worker",
    store: str | None = None,
    web_port: int = 6066,
    web_enabled: bool = True,
    replication: Replication | None = None,
) -> Topology:
    """Declare everything; nothing is created on the broker until the worker starts.

    ``replication`` is the cluster's (``streams.admin.cluster_replication``, asked by the
    worker at start); without it, ``METERING_REPLICATION_FACTOR`` or 1. Faust creates the
    changelogs with it.
    """
    replication = replication or Replication(settings.replication_factor or 1)
    changelog = replication.topic_configs()
    prefix = settings.topic_prefix
    broker = settings.kafka_bootstrap_servers or "localhost:9092"
    datadir = settings.home / "faust" / f"{prefix}{app_id}"  # not Faust's ./<app id>-data
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    security = KafkaSecurity.from_settings(settings)
    app = faust.App(
        f"{prefix}{app_id}",
        broker=f"kafka://{broker}",
        # "rocksdb://" without a path: each table gets its own database per partition
        # (<datadir>/v1/tables/<table>-<partition>.db); a path in the URL would
        # make every table open the same files and fail on RocksDB's lock.
        store=store or "rocksdb://",
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        topic_replication_factor=replication.factor,
        # A killed worker's partitions move after this long without its heartbeat.
        broker_session_timeout=settings.worker_session_timeout,
        processing_guarantee="at_least_once",
        web_enabled=web_enabled,
        web_port=web_port,
        web_host=settings.web_host,  # METERING_WEB_HOST: 127.0.0.1 unless in a container
        table_standby_replicas=1,
        broker_commit_interval=1.0,
        producer_linger=PRODUCER.linger_s,
        producer_max_batch_size=PRODUCER.max_batch_size,
        producer_compression_type=PRODUCER.compression,
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=FETCH_BYTES_PER_PARTITION,
        key_serializer="raw",
        value_serializer="raw",
        **security.faust_options(),  # SASL_SSL credentials, when configured
    )

    def topic(name: str, **options: Any) -> Any:
        return app.topic(
            f"{prefix}{name}",
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
            **options,
        )

    def table(name: str, kind: Any, **options: Any) -> Any:
        return kind(
            name,
            key_type=str,
            value_type=bytes,
            partitions=settings.partitions,
            extra_topic_configs=changelog,
            **options,
        )

    inputs = app.topic(
        *(
            f"{prefix}{name}"
            for name in (topics.REQUESTS, topics.SUBSCRIPTIONS, topics.ADJUSTMENTS, topics.TICKS)
        ),
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
    )
    outputs = {
        topics.LEDGER: topic(topics.LEDGER),
        topics.QUOTA: topic(topics.QUOTA),
        topics.ROUTING: topic(topics.ROUTING, compacting=True),
        topics.DLQ: topic(topics.DLQ),
    }
    return Topology(
        app=app,
        inputs=inputs,
        discounts=topic(topics.DISCOUNTS),
        outputs=outputs,
        ticks=topic(topics.TICKS),
        accounts=table("accounts", app.Table),
        seen=table("seen", app.Table),
        # Each worker must apply every discount at once, whichever worker's `discounts` agent
        # wrote it. Faust counts every partition of a global changelog as the worker's own
        # (active) too, and after recovery buffers their records up to recovery_buffer_size
        # (1000) before applying them: with 3 workers each saw only the supply states its own
        # agent had applied, and charged the others at the default multiplier
        # (tests/cluster/test_worker_takeover.py; faust #541, #716).
        discount_table=table("discounts", app.GlobalTable, recovery_buffer_size=1),
        positions=table("positions", app.Table),
        prefix=prefix,
        bootstrap_servers=broker,
        security=security,
    )
