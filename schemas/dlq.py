"""``metering.dlq``: input the pipeline could not charge, kept with its bytes and the reason.

Nothing is dropped: a dead letter holds the original payload (any secret redacted), where it
was read from, and a machine code plus a sentence a human can act on.
"""

from __future__ import annotations

from typing import Literal

from schemas.base import Contract

DeadLetterCode = Literal[
    "oversized",
    "secret",
    "invalid",
    "unknown_topic",
    "unknown_account",
    "unknown_model",
    "model_not_allowed",
    "future_timestamp",
    "too_late",
    "conflict",
    "subscription_rejected",
    "unknown_entry",
    "adjustment_rejected",
]


class DeadLetter(Contract):
    """An input record set aside. ``payload_b64`` is exact (redacted) bytes; ``payload`` is text."""

    schema_version: Literal[1]
    source_topic: str
    source_partition: int
    source_offset: int
    key: str | None
    code: DeadLetterCode
    reason: str
    payload: str
    payload_b64: str
