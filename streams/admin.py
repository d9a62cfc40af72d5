"""Create the pipeline's topics before the worker subscribes (Faust ignores missing sources).

Every topic gets the configured partitions and replication; ``metering.routing`` is compacted
(gateways read the latest route per account). Changelogs are Faust's own, compacted and
without time retention.
"""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from metering.settings import Settings
from schemas import topics

log = logging.getLogger(__name__)

ALL_TOPICS = (*topics.INPUT_TOPICS, *topics.OUTPUT_TOPICS, topics.TICKS)


def topic_configs(name: str) -> dict[str, str]:
    if name == topics.ROUTING:
        return {"cleanup.policy": "compact"}
    return {}


async def ensure_topics(settings: Settings, bootstrap_servers: str) -> list[str]:
    """Create whichever topics are absent; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                settings.topic_prefix + name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=topic_configs(name),
            )
            for name in ALL_TOPICS
            if settings.topic_prefix + name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                await admin.create_topics(wanted)
        created = [t.name for t in wanted]
        if created:
            log.info("created topics %s", created)
        return created
    finally:
        await admin.close()
