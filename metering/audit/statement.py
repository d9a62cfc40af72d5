"""The statement of one account's bill over an audit span, and its SHA-256.

Built from ledger entries (the ones ClickHouse holds, or the ones the core derives) and the
core's windows. Plain data (dicts, lists, ``Decimal``, ``datetime``) so every output format
renders the same content; ``canonical`` fixes its bytes so equal bills hash equal.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.money import ZERO
from billing.windows import Window
from metering.audit.rows import Row
from metering.audit.span import AuditSpan
from schemas.base import format_timestamp

Statement = dict[str, Any]

USAGE = ("input_tokens", "cached_input_tokens", "output_tokens", "images")
AMOUNTS = ("list_cost_usd", "charge_usd", "flows", "debit")
FUNDING_SOURCES = ("subscription", "fallback", "payg", "unfunded")


def funding_source(entry: Row) -> str:
    """``payg`` funding is either the gateway's pay-as-you-go fallback key (the request was
    sent on the subscription) or a request the customer sent in payg mode."""
    if entry.funding == "payg" and entry.billing_mode == "subscription":
        return "fallback"
    return str(entry.funding)


def _window_rows(
    windows: Mapping[str, Window], span: AuditSpan, entries: Sequence[Row]
) -> list[dict[str, Any]]:
    debited: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for entry in entries:
        for window_id in (entry.window_5h_id, entry.window_7d_id, entry.period_id):
            if window_id is not None:
                debited[window_id] += entry.debit
    shown = [w for w in windows.values() if w.opened_at < span.end and w.resets_at > span.start]
    shown.sort(key=lambda w: (w.opened_at, w.kind, w.window_id))
    return [
        {
            "kind": w.kind,
            "window_id": w.window_id,
            "opened_at": w.opened_at,
            "resets_at": w.resets_at,
            "cap": w.cap,
            "consumed": w.consumed,
            "debited_in_span": debited[w.window_id],
            "exhaustions": [{"start": e.start, "end": e.end} for e in w.exhaustions],
        }
        for w in shown
    ]


def _model_rows(charges: Iterable[Row]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, Decimal], dict[str, Any]] = {}
    for entry in charges:
        key = (entry.model, entry.multiplier)
        row = rows.get(key)
        if row is None:
            row = rows[key] = {"model": entry.model, "multiplier": entry.multiplier, "requests": 0}
            row.update(dict.fromkeys(USAGE, 0))
            row.update(dict.fromkeys(AMOUNTS, ZERO))
        row["requests"] += 1
        for name in (*USAGE, *AMOUNTS):
            row[name] += getattr(entry, name)
    return [rows[key] for key in sorted(rows)]


def _funding_rows(entries: Iterable[Row]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {
        source: {"source": source, "entries": 0, **dict.fromkeys(AMOUNTS, ZERO)}
        for source in FUNDING_SOURCES
    }
    for entry in entries:
        row = rows[funding_source(entry)]
        row["entries"] += 1
        for name in AMOUNTS:
            row[name] += getattr(entry, name)
    return list(rows.values())


def _correction_rows(adjustments: Iterable[Row]) -> list[dict[str, Any]]:
    return [
        {
            "entry_id": e.entry_id,
            "adjusts_entry_id": e.adjusts_entry_id,
            "at": e.completed_at,
            "flows": e.flows,
            "charge_usd": e.charge_usd,
            "debit": e.debit,
            "reason": e.reason,
        }
        for e in sorted(adjustments, key=lambda e: (e.completed_at, e.entry_id))
    ]


def build_statement(
    account_id: str,
    span: AuditSpan,
    entries: Sequence[Row],
    windows: Mapping[str, Window],
) -> Statement:
    """The bill of ``account_id`` over ``span``: ``entries`` must be the account's entries
    whose ``started_at`` lies in the span."""
    charges = [e for e in entries if e.kind == "charge"]
    adjustments = [e for e in entries if e.kind == "adjustment"]
    totals: dict[str, Any] = {
        "entries": len(entries),
        "charges": len(charges),
        "corrections": len(adjustments),
        **{name: sum((getattr(e, name) for e in entries), ZERO) for name in AMOUNTS},
        "overshoot": sum((e.overshoot for e in entries), ZERO),
    }
    return {
        "account_id": account_id,
        "span": {"start": span.start, "end": span.end, "label": span.label},
        "plan_families": sorted({e.plan_family for e in entries}),
        "windows": _window_rows(windows, span, entries),
        "models": _model_rows(charges),
        "funding": _funding_rows(entries),
        "corrections": _correction_rows(adjustments),
        "totals": totals,
    }


def plain(value: Any) -> Any:
    """JSON-ready: a Decimal as its shortest exact string (1.500 → "1.5"), an instant as RFC
    3339 UTC; containers recursively."""
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return "0" if text in ("-0", "0") else text
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def canonical(statement: Statement) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes the hash is taken over."""
    return json.dumps(
        plain(statement), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def statement_hash(statement: Statement) -> str:
    return hashlib.sha256(canonical(statement)).hexdigest()
