"""What a step of the fold emits, in order, and why an input can be refused."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from billing.windows import Window
from schemas import topics
from schemas.base import Contract, format_timestamp
from schemas.dlq import DeadLetterCode
from schemas.ledger import Unit
from schemas.quota import QuotaEvent, QuotaReason


@dataclass(frozen=True, slots=True)
class Emitted:
    """One output record: its topic (without prefix), its key and its value."""

    topic: str
    key: str
    value: Contract


@dataclass(frozen=True, slots=True)
class Rejection:
    """The input cannot be applied; it goes to the DLQ with this code and sentence."""

    code: DeadLetterCode
    reason: str


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The input was already applied (same id, same content): it changes nothing."""

    key: str


def stable_id(prefix: str, *parts: str) -> str:
    """A short deterministic id from its parts (the unit separator keeps parts distinct)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    return f"{prefix}_{digest}"


def quota_event(
    account_id: str,
    window: Window,
    unit: Unit,
    kind: Literal["exhausted", "restored"],
    reason: QuotaReason,
    at: datetime,
) -> Emitted:
    """The window's state at ``at``; the id is stable so a re-emission dedups downstream."""
    event = QuotaEvent(
        schema_version=1,
        event_id=stable_id("qe", window.window_id, kind, format_timestamp(at)),
        account_id=account_id,
        type=kind,
        window_kind=window.kind,
        window_id=window.window_id,
        opened_at=window.opened_at,
        resets_at=window.resets_at,
        consumed=window.consumed,
        cap=window.cap if window.cap is not None else window.consumed,
        unit=unit,
        reason=reason,
        at=at,
    )
    return Emitted(topics.QUOTA, account_id, event)
