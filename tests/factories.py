"""Factories for input records as the wire carries them (JSON bytes), with sensible defaults."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from billing.source import Source
from gateway.events import topic_for as gateway_topic_for
from schemas import topics

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
_ids = count(1)


def ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def at(minutes: float = 0, *, hours: float = 0, days: float = 0) -> datetime:
    """An instant relative to ``T0`` (a Monday 09:00 UTC)."""
    return T0 + timedelta(minutes=minutes, hours=hours, days=days)


def request(
    account: str = "acct_1",
    *,
    start: datetime | None = None,
    duration: timedelta = timedelta(seconds=5),
    model: str = "openai/gpt-5.2",
    input_tokens: int = 5000,
    output_tokens: int = 1000,
    cached: int = 0,
    images: int = 0,
    mode: str = "subscription",
    status: str = "ok",
    request_id: str | None = None,
    channel: str = "api",
) -> dict[str, Any]:
    start = start or T0
    return {
        "schema_version": 1,
        "request_id": request_id or f"req_{next(_ids)}",
        "account_id": account,
        "api_key_id": "key_1",
        "model": model,
        "channel": channel,
        "billing_mode": mode,
        "started_at": ts(start),
        "completed_at": ts(start + duration),
        "status": status,
        "usage": {
            "input_tokens": input_tokens,
            "cached_input_tokens": cached,
            "output_tokens": output_tokens,
            "images": images,
        },
    }


def started(
    account: str = "acct_1",
    *,
    family: str = "zenmux",
    plan: str = "pro",
    paid: str = "20",
    when: datetime | None = None,
    period_days: int = 30,
) -> dict[str, Any]:
    when = when or T0 - timedelta(hours=1)
    return {
        "schema_version": 1,
        "account_id": account,
        "type": "started",
        "at": ts(when),
        "plan_family": family,
        "plan": plan,
        "period_start": ts(when),
        "period_end": ts(when + timedelta(days=period_days)),
        "paid_usd": paid,
    }


def lifecycle(
    kind: str, account: str = "acct_1", *, when: datetime, **fields: Any
) -> dict[str, Any]:
    event = {"schema_version": 1, "account_id": account, "type": kind, "at": ts(when)}
    for name, value in fields.items():
        event[name] = ts(value) if isinstance(value, datetime) else value
    return event


def discount(model: str, state: str, when: datetime) -> dict[str, Any]:
    return {"schema_version": 1, "model": model, "supply_state": state, "effective_at": ts(when)}


def adjustment(
    entry_id: str,
    amount: str,
    *,
    account: str = "acct_1",
    when: datetime,
    adjustment_id: str | None = None,
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "adjustment_id": adjustment_id or f"adj_{next(_ids)}",
        "account_id": account,
        "entry_id": entry_id,
        "amount": amount,
        "reason": "customer support refund",
        "at": ts(when),
    }


def topic_for(value: dict[str, Any]) -> str:
    return gateway_topic_for(value.keys())


def encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def records(
    values: list[dict[str, Any] | bytes], topic: str | None = None
) -> list[tuple[Source, bytes, str | None]]:
    """Log records in order, offsets numbered from 0."""
    out = []
    for offset, value in enumerate(values):
        if isinstance(value, bytes):
            out.append((Source(topic or topics.REQUESTS, 0, offset), value, None))
        else:
            out.append((Source(topic_for(value), 0, offset), encode(value), None))
    return out


def log_lines(values: list[dict[str, Any]]) -> str:
    return "".join(json.dumps({"topic": topic_for(v), "value": v}) + "\n" for v in values)
