"""The Faust app, its topics and its tables, built from settings.

Input topics are keyed by ``account_id`` and share one partition count, so Faust co-partitions
them: an account's requests, lifecycle events, adjustments and ticks reach the same agent
instance in log order per topic, and its table entries live in that partition's changelog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from metering.settings import Settings
from schemas import topics


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

    def unprefixed(self, name: str) -> str:
        return name[len(self.prefix) :] if name.startswith(self.prefix) else name


def build(
    settings: Settings,
    *,
    app_id: str = "metering-worker",
    store: str | None = None,
    web_port: int = 6066,
    web_enabled: bool = True,
) -> Topology:
    """Declare everything; nothing is created on the broker until the worker starts."""
    prefix = settings.topic_prefix
    broker = settings.kafka_bootstrap_servers or "localhost:9092"
    datadir = settings.home / "faust" / f"{prefix}{app_id}"  # not Faust's ./<app id>-data
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(
        f"{prefix}{app_id}",
        broker=f"kafka://{broker}",
        # "rocksdb://" without a path: each table gets its own database per partition
        # (<datadir>/v1/tables/<table>-<partition>.db); a path in the URL would
        # make every table open the same files and fail on RocksDB's lock.
        store=store or "rocksdb://",
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee="at_least_once",
        web_enabled=web_enabled,
        web_port=web_port,
        web_host="127.0.0.1",
        table_standby_replicas=1,
        broker_commit_interval=1.0,
        producer_linger=0.005,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
    )

    def topic(name: str, **options: Any) -> Any:
        return app.topic(
            f"{prefix}{name}",
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
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
        accounts=app.Table(
            "accounts", key_type=str, value_type=bytes, partitions=settings.partitions
        ),
        seen=app.Table("seen", key_type=str, value_type=bytes, partitions=settings.partitions),
        discount_table=app.GlobalTable(
            "discounts", key_type=str, value_type=bytes, partitions=settings.partitions
        ),
        positions=app.Table(
            "positions", key_type=str, value_type=bytes, partitions=settings.partitions
        ),
        prefix=prefix,
        bootstrap_servers=broker,
    )
