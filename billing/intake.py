"""Raw bytes in, a validated contract model or a rejection out — before any billing logic.

Order matters: size first (never parse a huge payload), then secrets (a key must be redacted
even when the JSON around it is broken), then the strict schema.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from billing.outputs import Rejection
from schemas.topics import CONTRACTS, INPUT_TOPICS, TICKS

SECRET = re.compile(rb"(?<![A-Za-z0-9])sk-[A-Za-z0-9][A-Za-z0-9_\-]{7,}")
REDACTED = b"sk-[REDACTED]"


def redact(payload: bytes) -> tuple[bytes, bool]:
    """Replace every secret-looking key (``sk-…``) with a marker; reports whether any was found."""
    redacted, count = SECRET.subn(REDACTED, payload)
    return redacted, count > 0


def describe(error: ValidationError) -> str:
    """A sentence a human can act on: the first problems with their field paths."""
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item["loc"] if p not in ("function-after",))
        if item["type"] == "json_invalid":
            parts.append(f"invalid JSON ({item['ctx'].get('error', item['msg'])})")
        else:
            parts.append(f"{where or 'record'}: {item['msg']}")
    more = error.error_count() - 3
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def decode(topic: str, payload: bytes, max_bytes: int) -> Any:
    """The validated model for ``topic``, or a ``Rejection`` saying why not."""
    if topic not in INPUT_TOPICS and topic != TICKS:
        return Rejection("unknown_topic", f"no input topic named {topic!r}")
    if len(payload) > max_bytes:
        return Rejection(
            "oversized", f"payload of {len(payload)} bytes exceeds the {max_bytes}-byte limit"
        )
    # The literal test is a fast scan; the regex (slow: it tries every position) runs only
    # when the literal is there, and every match of it contains the literal.
    if b"sk-" in payload and SECRET.search(payload):
        return Rejection(
            "secret",
            "a secret-looking API key (sk-…) appears in the payload; only api_key_id may be "
            "sent; the value was redacted",
        )
    try:
        return CONTRACTS[topic].validator.validate_json(payload)  # not the wrapper: per record
    except ValidationError as exc:
        return Rejection("invalid", describe(exc))
