"""Republish dead letters: each one's original bytes to its source topic, with its key.

Why the original bytes: a record refused for a cause outside it (a request that arrived before
its account's ``started``, a model the catalog lacked) is charged as it is once the cause is
fixed. Why nothing is deduplicated here: the pipeline charges a ``request_id`` once (an
adjustment its ``adjustment_id``, a lifecycle or discount event its content), so republishing
a letter twice, or one that a gateway already resent, charges nothing twice.
"""

from __future__ import annotations

import base64

from metering.dlq.letters import Letter
from metering.errors import InputError
from schemas import topics
from simulator.sinks import kafka_publisher

_REFUSED = {
    "secret": "its payload was redacted (a secret was found in it): the gateway must resend "
    "the request without the secret",
    "oversized": "its payload was cut at the size limit: the gateway must resend a smaller one",
}


def parse_source(text: str) -> str:
    """``TOPIC:PARTITION:OFFSET`` checked and normalised (``InputError`` if it is not one)."""
    parts = text.strip().rsplit(":", 2)
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit() or not parts[2].isdigit():
        raise InputError(f"--source-offset {text!r} is not TOPIC:PARTITION:OFFSET")
    return f"{parts[0]}:{int(parts[1])}:{int(parts[2])}"


def unreplayable(letter: Letter) -> str | None:
    """Why ``letter`` cannot be republished as it is, or None if it can."""
    if letter.letter.code in _REFUSED:
        return _REFUSED[letter.letter.code]
    if letter.letter.source_topic not in topics.INPUT_TOPICS:
        return f"{letter.letter.source_topic} is not an input topic"
    return None


def original(letter: Letter) -> tuple[str, bytes, bytes]:
    """(source topic without prefix, key, value) as the record was first published."""
    dead = letter.letter
    return dead.source_topic, (dead.key or "").encode(), base64.b64decode(dead.payload_b64)


async def resubmit(bootstrap_servers: str, prefix: str, letters: list[Letter]) -> None:
    """Publish every letter's original record; returns once the broker acknowledged all."""
    async with kafka_publisher(bootstrap_servers, prefix) as publisher:
        for letter in letters:
            await publisher.publish_raw(*original(letter))
