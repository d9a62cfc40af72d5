"""Table values as JSON bytes: the core's state objects in and out of Faust's changelogs.

Explicit per type (not pickle) so a changelog stays readable, stable across Python versions,
and exact: Decimals and instants are written as strings.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from billing.account import AccountState, PublishedRoute
from billing.dedup import ChargeMemo, Seen
from billing.discounts import DiscountPoint, DiscountTimeline
from billing.subscription import FallbackSetting, Term
from billing.windows import Exhaustion, Window, window_id
from schemas.base import format_timestamp


def _t(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _dt(value: str | None) -> datetime | None:
    return None if value is None else _at(value)


def _d(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _window(w: Window, account: str) -> dict[str, Any]:
    # The id is written only when it is not the one derived from account, kind and opening
    # (always so far): a sixth of an account's bytes saved, and old values still read back.
    derived = window_id(account, w.kind, w.opened_at)
    return {
        "kind": w.kind,
        "id": None if w.window_id == derived else w.window_id,
        "opened": _t(w.opened_at),
        "resets": _t(w.resets_at),
        "cap": _d(w.cap),
        "consumed": _d(w.consumed),
        "exh": [[_t(e.start), _t(e.end)] for e in w.exhaustions],
    }


def _window_back(raw: dict[str, Any], account: str) -> Window:
    opened = _at(raw["opened"])
    return Window(
        kind=raw["kind"],
        window_id=raw["id"] or window_id(account, raw["kind"], opened),
        opened_at=opened,
        resets_at=_at(raw["resets"]),
        cap=None if raw["cap"] is None else Decimal(raw["cap"]),
        consumed=Decimal(raw["consumed"]),
        exhaustions=tuple(Exhaustion(_at(s), _dt(e)) for s, e in raw["exh"]),
    )


def encode_account(state: AccountState) -> bytes:
    return orjson.dumps(account_body(state))


def decode_account(data: bytes) -> AccountState:
    return account_from_body(orjson.loads(data))


def account_body(state: AccountState) -> dict[str, Any]:
    """The account state as a JSON-ready mapping."""
    route = state.route
    return {
        "account": state.account_id,
        "family": state.family,
        "terms": [
            {
                "start": _t(t.period_start),
                "end": _t(t.period_end),
                "paid": _d(t.paid_usd),
                "plans": [[_t(at), plan] for at, plan in t.plans],
                "ended": _t(t.ended_at),
            }
            for t in state.terms
        ],
        "scheduled": state.scheduled_plan,
        "fallback": [[_t(f.since), f.enabled, f.key_id] for f in state.fallback],
        "windows": [_window(w, state.account_id) for w in state.windows],
        "route": None
        if route is None
        else [route.route, route.fallback_key_id, _t(route.until), route.seq],
        "event_clock": _t(state.event_clock),
        "now": _t(state.now),
    }


def deadline_text(state: AccountState) -> str | None:
    """The account's next reset or term end, stored beside its state: the tick schedule is
    rebuilt from it after a recovery without decoding a million states."""
    return _t(state.next_deadline())


def deadline_back(text: str | None) -> datetime | None:
    return _dt(text)


def account_from_body(raw: dict[str, Any]) -> AccountState:
    route = raw["route"]
    return AccountState(
        account_id=raw["account"],
        family=raw["family"],
        terms=tuple(
            Term(
                period_start=_at(t["start"]),
                period_end=_at(t["end"]),
                paid_usd=Decimal(t["paid"]),
                plans=tuple((_at(at), plan) for at, plan in t["plans"]),
                ended_at=_dt(t["ended"]),
            )
            for t in raw["terms"]
        ),
        scheduled_plan=raw["scheduled"],
        fallback=tuple(FallbackSetting(_at(s), e, k) for s, e, k in raw["fallback"]),
        windows=tuple(_window_back(w, raw["account"]) for w in raw["windows"]),
        route=None
        if route is None
        else PublishedRoute(route[0], route[1], _dt(route[2]), route[3]),
        event_clock=_at(raw["event_clock"]),
        now=_at(raw["now"]),
    )


def encode_seen(seen: Seen) -> bytes:
    memo = seen.charge
    body: dict[str, Any] = {"fp": seen.fingerprint, "at": _t(seen.at), "src": seen.source}
    if memo is not None:
        body["charge"] = {
            "entry_id": memo.entry_id,
            "request_id": memo.request_id,
            "api_key_id": memo.api_key_id,
            "model": memo.model,
            "channel": memo.channel,
            "billing_mode": memo.billing_mode,
            "status": memo.status,
            "started_at": _t(memo.started_at),
            "plan": memo.plan,
            "funding": memo.funding,
            "fallback_key_id": memo.fallback_key_id,
            "catalog_version": memo.catalog_version,
            "unit": memo.unit,
            "amount": _d(memo.amount),
            "adjusted": _d(memo.adjusted),
            "window_ids": list(memo.window_ids),
        }
    return orjson.dumps(body)


def decode_seen(data: bytes) -> Seen:
    raw = orjson.loads(data)
    memo = raw.get("charge")
    charge = None
    if memo is not None:
        charge = ChargeMemo(
            **{
                **memo,
                "started_at": _at(memo["started_at"]),
                "amount": Decimal(memo["amount"]),
                "adjusted": Decimal(memo["adjusted"]),
                "window_ids": tuple(memo["window_ids"]),
            }
        )
    source = raw.get("src")
    return Seen(raw["fp"], _at(raw["at"]), charge, None if source is None else tuple(source))


def encode_timeline(timeline: DiscountTimeline) -> bytes:
    return orjson.dumps([[_t(p.effective_at), p.supply_state] for p in timeline.points])


def decode_timeline(data: bytes) -> DiscountTimeline:
    return DiscountTimeline(
        tuple(DiscountPoint(_at(at), state) for at, state in orjson.loads(data))
    )
