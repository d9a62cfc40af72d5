"""Bad input by class: the deterministic corpus the harness sends through the live worker.

Each class is one way a gateway bug, a broken client or an attacker can spoil an input record
(SPEC "Bad input", and the classes issue #8 names). Every payload is built from a *valid*
request of a real account, so only the broken part is wrong and the worker must tell exactly
that part apart. The same corpus feeds the pure fuzz tests (``tests/unit/billing``) and the
live runs, so the classes counted in ``docs/RELIABILITY.md`` are the ones both check.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from schemas import topics
from schemas.base import format_timestamp
from schemas.requests import GatewayRequest

OVERSIZED_BYTES: Final = 100 * 1024
"""Above the core's 64 KiB payload limit, below Kafka's 1 MB message limit (it must arrive)."""
NESTING_DEPTH: Final = 20_000
"""Far deeper than any JSON parser's recursion limit, yet small enough (40 KB) to be refused
for its nesting, not its size."""
_HOLE: Final = "\x00hole\x00"
"""Placeholder for a raw JSON token that ``json.dumps`` cannot write (NaN, 1e400, nesting)."""


@dataclass(frozen=True)
class BadInput:
    """One spoiled record: its class, the input topic (no prefix), Kafka key and exact bytes."""

    kind: str
    topic: str
    key: str
    payload: bytes


def _with(fields: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**fields, **changes}


def _usage(fields: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return _with(fields, usage={**fields["usage"], **changes})


def _dumps(fields: dict[str, Any], raw: bytes | None = None) -> bytes:
    """JSON bytes of ``fields``; the string ``_HOLE`` becomes ``raw``, unquoted."""
    text = json.dumps(fields, separators=(",", ":")).encode("utf-8")
    if raw is None:
        return text
    return text.replace(json.dumps(_HOLE).encode("utf-8"), raw)


def _timestamps(fields: dict[str, Any], started: datetime) -> dict[str, Any]:
    return _with(
        fields,
        started_at=format_timestamp(started),
        completed_at=format_timestamp(started + timedelta(seconds=3)),
    )


Builder = Callable[[dict[str, Any], datetime, random.Random], tuple[str, bytes]]
"""(a valid request's fields, the ingest instant, the seeded stream) → (topic, payload)."""

BUILDERS: Final[dict[str, Builder]] = {
    "invalid_json": lambda f, now, rng: (topics.REQUESTS, _dumps(f)[: rng.randint(1, 40)]),
    "random_bytes": lambda f, now, rng: (topics.REQUESTS, rng.randbytes(rng.randint(1, 512))),
    "empty": lambda f, now, rng: (topics.REQUESTS, b""),
    "oversized": lambda f, now, rng: (
        topics.REQUESTS,
        _dumps(f) + b" " * OVERSIZED_BYTES,  # valid JSON: only its size is wrong
    ),
    "deeply_nested": lambda f, now, rng: (
        topics.REQUESTS,
        _dumps(_with(f, usage=_HOLE), b"[" * NESTING_DEPTH + b"]" * NESTING_DEPTH),
    ),
    "huge_integer": lambda f, now, rng: (
        topics.REQUESTS,
        _dumps(_usage(f, input_tokens=10**400)),
    ),
    "huge_float": lambda f, now, rng: (
        topics.REQUESTS,
        _dumps(_usage(f, output_tokens=_HOLE), b"1e400"),
    ),
    "nan": lambda f, now, rng: (topics.REQUESTS, _dumps(_usage(f, input_tokens=_HOLE), b"NaN")),
    "infinity": lambda f, now, rng: (
        topics.REQUESTS,
        _dumps(_usage(f, output_tokens=_HOLE), b"-Infinity"),
    ),
    "invalid_utf8": lambda f, now, rng: (
        topics.REQUESTS,
        _dumps(_with(f, api_key_id=_HOLE), b'"key_\xff\xfe\xc3"'),
    ),
    "far_past": lambda f, now, rng: (
        topics.REQUESTS,
        _dumps(_timestamps(f, datetime(1970, 1, 1, tzinfo=now.tzinfo))),
    ),
    "far_future": lambda f, now, rng: (
        topics.REQUESTS,
        _dumps(_timestamps(f, now + timedelta(days=365 * 500))),
    ),
    "future_timestamp": lambda f, now, rng: (
        topics.REQUESTS,
        _dumps(_timestamps(f, now + timedelta(hours=1))),
    ),
    "secret": lambda f, now, rng: (
        topics.REQUESTS,
        _dumps(_with(f, api_key_id="sk-live-" + rng.randbytes(16).hex())),
    ),
    "negative_count": lambda f, now, rng: (topics.REQUESTS, _dumps(_usage(f, output_tokens=-5))),
    "completed_before_started": lambda f, now, rng: (
        topics.REQUESTS,
        _dumps(_with(f, completed_at=format_timestamp(now - timedelta(days=2)))),
    ),
    "unknown_model": lambda f, now, rng: (
        topics.REQUESTS,
        _dumps(_with(f, model="acme/no-such-model")),
    ),
    "unknown_account": lambda f, now, rng: (
        topics.REQUESTS,
        _dumps(_with(f, account_id=f"{f['account_id']}-nobody")),
    ),
    "conflicting_duplicate": lambda f, now, rng: (
        topics.REQUESTS,
        _dumps(_usage(f, output_tokens=f["usage"]["output_tokens"] + 1)),
    ),
    "wrong_topic": lambda f, now, rng: (topics.SUBSCRIPTIONS, _dumps(f)),
    "garbage_adjustment": lambda f, now, rng: (topics.ADJUSTMENTS, b'{"schema_version":1}'),
}
"""Every class, by name; each builds one payload (and says which input topic carries it)."""

KEEPS_REQUEST_ID: Final = frozenset({"conflicting_duplicate"})
"""Classes that reuse the request's own id (the others get a fresh one, so that each record
is refused for its own fault, not as a conflict with the request it was built from)."""


def bad_inputs(
    requests: list[GatewayRequest], now: datetime, seed: int, per_class: int = 1
) -> list[BadInput]:
    """``per_class`` records of every class, each spoiling a request of ``requests`` (taken in
    turn, so their accounts vary); the same arguments give the same bytes. Publish them after
    the requests they were built from: a conflicting duplicate must follow its original."""
    rng = random.Random(f"bad-input:{seed}")
    out: list[BadInput] = []
    for n in range(per_class):
        for index, (kind, build) in enumerate(sorted(BUILDERS.items())):
            request = requests[(n * len(BUILDERS) + index) % len(requests)]
            fields = request.model_dump(mode="json")
            if kind not in KEEPS_REQUEST_ID:
                fields["request_id"] = f"{request.request_id}-bad-{kind}-{n}"
            topic, payload = build(fields, now, rng)
            out.append(BadInput(kind, topic, request.account_id, payload))
    return out
