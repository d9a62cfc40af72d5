"""The dead letters of ``<prefix>metering.dlq``, from its beginning to its end at the call.

Read group-less (no offsets committed: reading is free of side effects) with this process's
``METERING_KAFKA_*`` security, through the harness's whole-topic reader. A value that is not a
``DeadLetter`` is counted, not fatal: the operator still sees every letter that is one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from aiokafka.errors import KafkaError
from pydantic import ValidationError

from metering.errors import ServiceUnavailable
from metering.topic_reader import read_topic
from schemas import topics
from schemas.dlq import DeadLetter


@dataclass(frozen=True)
class Letter:
    """One dead letter and where it sits in the DLQ topic."""

    partition: int
    offset: int
    letter: DeadLetter

    @property
    def source(self) -> str:
        """``TOPIC:PARTITION:OFFSET`` of the refused record (topic without prefix)."""
        return (
            f"{self.letter.source_topic}:{self.letter.source_partition}:{self.letter.source_offset}"
        )


@dataclass(frozen=True)
class Letters:
    """Every letter of ``topic`` in partition and offset order; ``unreadable`` other values."""

    topic: str
    letters: list[Letter]
    unreadable: int


async def read_letters(bootstrap_servers: str, prefix: str = "") -> Letters:
    """The DLQ as it is now; ``ServiceUnavailable`` if Kafka or the topic is not there."""
    topic = prefix + topics.DLQ
    try:
        records = await read_topic(bootstrap_servers, topic)
    except KafkaError as exc:
        raise ServiceUnavailable(
            f"kafka at {bootstrap_servers}: {type(exc).__name__}: {exc}"
        ) from exc
    letters, unreadable = [], 0
    for record in records:
        try:
            letter = DeadLetter.model_validate_json(record.value or b"")
        except ValidationError:
            unreadable += 1
            continue
        letters.append(Letter(record.partition, record.offset, letter))
    return Letters(topic, letters, unreadable)


def select(
    letters: list[Letter], *, code: str | None = None, sources: Collection[str] | None = None
) -> list[Letter]:
    """The letters of ``code`` (if given) whose source is one of ``sources`` (if given)."""
    return [
        letter
        for letter in letters
        if (code is None or letter.letter.code == code)
        and (sources is None or letter.source in sources)
    ]
