"""Create the pipeline's topics before the worker subscribes (Faust ignores missing sources).

Every topic gets the configured partitions and a replication that fits the cluster
(``replication_for``: 1 broker → 1 copy; 3 or more → 3 copies, 2 of which must acknowledge a
write); ``metering.routing`` is compacted (gateways read the latest route per account); the
inputs, the ledger and the DLQ are kept forever (``RECORD_TOPICS``). An existing record
topic with a retention is left as it is, and named in a warning.
Changelogs are Faust's own, compacted and without time retention, replicated the same way
(``streams.topology``). Topics that already exist are left as they are.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from metering.errors import ConfigError
from metering.kafka_security import KafkaSecurity
from metering.settings import Settings
from schemas import topics

log = logging.getLogger(__name__)

ALL_TOPICS = (*topics.INPUT_TOPICS, *topics.OUTPUT_TOPICS, topics.TICKS)

MAX_REPLICATION_FACTOR = 3
"""Three copies let one broker fail or restart while writes still reach two of them."""


@dataclass(frozen=True)
class Replication:
    """How many copies of each partition the cluster keeps, and how many a write must reach."""

    factor: int

    @property
    def min_insync(self) -> int:
        """2 once there are 3 copies: an acknowledged record (``acks=all``) then survives the
        loss of any one broker, and writes go on while one is down. With fewer copies,
        requiring 2 would stop every write whenever a single broker is away."""
        return 2 if self.factor >= 3 else 1

    def topic_configs(self) -> dict[str, str]:
        """The per-topic settings that carry it (the factor is a creation argument)."""
        return {"min.insync.replicas": str(self.min_insync)}


def replication_for(brokers: int, configured: int | None = None) -> Replication:
    """The replication of topics created on a cluster of ``brokers`` live brokers.

    Unset (``METERING_REPLICATION_FACTOR``): as many copies as there are brokers, up to 3. A
    configured factor is kept, but it cannot exceed the brokers that would hold the copies.
    """
    if configured is None:
        return Replication(max(1, min(brokers, MAX_REPLICATION_FACTOR)))
    if configured > brokers:
        raise ConfigError(
            f"METERING_REPLICATION_FACTOR={configured} but the cluster has {brokers} live "
            f"broker(s): lower it, or unset it to derive it from the cluster"
        )
    return Replication(configured)


async def _live_brokers(admin: AIOKafkaAdminClient) -> int:
    return len((await admin.describe_cluster())["brokers"])


async def cluster_replication(settings: Settings, bootstrap_servers: str) -> Replication:
    """The replication topics get on the cluster at ``bootstrap_servers``, asked of it now."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        **KafkaSecurity.from_settings(settings).aiokafka_options(),
    )
    await admin.start()
    try:
        return replication_for(await _live_brokers(admin), settings.replication_factor)
    finally:
        await admin.close()


RECORD_TOPICS = (*topics.INPUT_TOPICS, topics.LEDGER, topics.DLQ)
"""The system of record: the raw inputs an audit or a rebuild folds from their beginning, the
immutable ledger, and the dead letters kept with their reason."""

KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
"""No time or size retention. A broker's default (7 days) would delete an account's
``started`` a week after it subscribed, and every audit or rebuild from Kafka after that
would fold the account without it (readers refuse such a topic: ``require_whole``)."""


def topic_configs(name: str) -> dict[str, str]:
    if name == topics.ROUTING:
        return {"cleanup.policy": "compact"}
    if name in RECORD_TOPICS:
        return dict(KEEP_FOREVER)
    return {}


CHANGELOG_CONFIGS = {"cleanup.policy": "compact"}
"""Faust's own setting for a table changelog (compacted, no time retention)."""


async def _with_retention(admin: AIOKafkaAdminClient, names: Sequence[str]) -> list[str]:
    """Those of ``names`` whose records are deleted by time or size (not -1 in both)."""
    if not names:
        return []
    asked = [
        ConfigResource(ConfigResourceType.TOPIC, name, dict.fromkeys(KEEP_FOREVER))
        for name in names
    ]
    finite = []
    for response in await admin.describe_configs(asked):
        for _error, _message, _type, name, entries, *_ in response.resources:
            if any(entry[1] != KEEP_FOREVER[entry[0]] for entry in entries):
                finite.append(name)
    return sorted(finite)


async def ensure_topics(
    settings: Settings,
    bootstrap_servers: str,
    replication: Replication | None = None,
    changelogs: Sequence[str] = (),
) -> list[str]:
    """Create whichever topics are absent; returns the names created.

    ``replication`` defaults to what the cluster allows (``replication_for``). ``changelogs``
    are the worker's table changelogs (full names): Faust declares them itself, but while its
    consumer joins the group, so the first assignment on a fresh broker could miss one and the
    worker then never recovered that table (it waited forever for the discounts). Created here,
    before Faust starts, they exist when the group forms.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        **KafkaSecurity.from_settings(settings).aiokafka_options(),
    )
    await admin.start()
    try:
        if replication is None:
            replication = replication_for(await _live_brokers(admin), settings.replication_factor)
        existing = set(await admin.list_topics())
        configs = {settings.topic_prefix + name: topic_configs(name) for name in ALL_TOPICS}
        configs.update((name, CHANGELOG_CONFIGS) for name in changelogs)
        wanted = [
            NewTopic(
                name,
                num_partitions=settings.partitions,
                replication_factor=replication.factor,
                topic_configs={**replication.topic_configs(), **extra},
            )
            for name, extra in configs.items()
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                await admin.create_topics(wanted)
        created = [t.name for t in wanted]
        kept = [settings.topic_prefix + name for name in RECORD_TOPICS]
        for name in await _with_retention(admin, [n for n in kept if n in existing]):
            log.warning(
                "topic %s has a time or size retention: once its first records are deleted, "
                "audits and rebuilds from Kafka refuse it; keep it forever with retention.ms=-1 "
                "and retention.bytes=-1 (docs/OPERATIONS.md)",
                name,
            )
        if created:
            log.info(
                "created topics %s (replication %d, min.insync.replicas %d)",
                created, replication.factor, replication.min_insync,
            )  # fmt: skip
        return created
    finally:
        await admin.close()
