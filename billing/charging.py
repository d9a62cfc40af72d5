"""Charging one request: dedup, validation against the account, funding, windows, ledger entry.

Steps, in this order (each a rule of SPEC.md "Charging" / "Windows and routing"):
1. A ``request_id`` already charged is a duplicate (same content) or a conflict (DLQ; told
   apart only when ``Policy.tell_conflicts``).
2. Refuse what cannot be charged: future timestamps, unknown account or model, a model the
   plan does not allow, a start older than the dedup horizon.
3. Let time pass to the request's ``completed_at`` (resets due before it are applied first).
4. Decide funding by ``started_at``: payg by choice; else subscription unless no term is
   active or a window it belongs to was already exhausted at that instant; then the fallback
   key if enabled at that instant, else ``unfunded`` leakage.
5. Price it (catalog version and discount in effect at ``started_at``), debit the windows it
   belongs to (opening 5h/7d windows at its start if none is active) and emit ``exhausted``
   for each window whose cap it reaches.
6. Write the ledger entry and re-derive the route.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing.account import AccountState
from billing.catalog.model import Catalog, CatalogVersion
from billing.clock import advance, unit_of
from billing.dedup import ChargeMemo, Seen, already_applied, fingerprint
from billing.discounts import DiscountPoint
from billing.money import ZERO
from billing.outputs import Duplicate, Emitted, Rejection, quota_event, stable_id
from billing.policy import Policy
from billing.pricing import discounted_usd, flows, list_cost_usd
from billing.routing import publish
from billing.source import Source
from billing.subscription import Term, allows_model, caps, fallback_at, term_at
from billing.windows import (
    OPENED_AT,
    ROLLING_KINDS,
    WINDOW_ORDER,
    Window,
    WindowKind,
    attribute,
    debit,
    window_id,
)
from schemas import topics
from schemas.ledger import Funding, LedgerEntry
from schemas.requests import GatewayRequest

DiscountLookup = Callable[[str, datetime], DiscountPoint | None]
LIST_PRICE = Decimal(1)
"""The multiplier of every charge but a Lilac subscription-funded one."""


@dataclass(frozen=True, slots=True)
class Charged:
    state: AccountState
    seen: Seen
    emitted: list[Emitted]


def charge_entry_id(account_id: str, request_id: str) -> str:
    """The ledger entry id of a request's charge: the same on every re-delivery."""
    return stable_id("le", account_id, request_id)


def charge(
    state: AccountState | None,
    prior: Seen | None,
    request: GatewayRequest,
    *,
    entry_id: str,
    catalog: Catalog,
    discount_at: DiscountLookup,
    policy: Policy,
    source: Source,
) -> Charged | Rejection | Duplicate:
    """Apply one request to its account. Pure: the same inputs give the same outputs.

    ``entry_id`` is ``charge_entry_id`` of the request: the caller computed it to look up
    ``prior``, and it is a hash, not free to compute twice per request.
    """
    print_ = fingerprint(request) if policy.tell_conflicts else ""
    # Step 1. (Only a request id seen before can be a repeat: the message is built for those.)
    if prior is not None:
        repeat = already_applied(
            prior,
            print_,
            source.position,
            entry_id,
            f"request_id {request.request_id} was already charged (entry {entry_id}) "
            "with different content",
        )
        if repeat is not None:
            return repeat
    # Step 2.
    started = request.started_at
    version = catalog.at(started)
    term = term_at(state.terms, started) if state is not None else None
    refused = _refusal(state, request, version, term, policy, source)
    if refused is not None:
        return refused
    assert state is not None and version is not None
    # Step 3.
    late_before = state.event_clock
    terms = state.terms
    state, emitted = advance(state, request.completed_at, policy, by_event=True)
    # Step 4.
    if state.terms is not terms:  # pruned: the term of the refusal check may be gone
        term = term_at(state.terms, started)
    plan = term.plan_at(started) if term is not None else None
    owned = _owning_windows(state, started)
    mode = request.billing_mode
    funding: Funding = "subscription"
    if mode == "payg" or term is None or _any_exhausted_at(owned, started):
        funding = "payg"
    fallback_key = None
    if funding == "payg" and mode == "subscription":
        setting = fallback_at(state.fallback, started)
        if setting is not None and setting.enabled:
            fallback_key = setting.key_id
        else:
            funding = "unfunded"
    # Step 5.
    family = state.family
    list_cost = list_cost_usd(version.models[request.model], request.usage, request.status)
    multiplier, supply, supply_since = LIST_PRICE, None, None
    if family == "lilac" and funding == "subscription":
        point = discount_at(request.model, started)
        supply = point.supply_state if point is not None else version.default_supply_state
        supply_since = point.effective_at if point is not None else None
        multiplier = version.multiplier(supply)
    charge_usd = discounted_usd(list_cost, multiplier)
    flow_count = (
        flows(list_cost, version.zenmux.flow, request.status) if family == "zenmux" else ZERO
    )
    amount = flow_count if family == "zenmux" else charge_usd
    debit_amount, overshoot, straggler = ZERO, ZERO, False
    if funding == "subscription":
        assert term is not None and plan is not None
        state, owned, crossing, overshoot, straggler = _debit_windows(
            state, owned, request, version, plan, term.paid_usd, amount
        )
        debit_amount = amount
        emitted += crossing
    late = straggler or _any_reset_by(owned, late_before)
    # Step 6.
    usage = request.usage
    # Every value comes from the validated request, the catalog or the arithmetic above.
    entry = LedgerEntry.trusted(
        {
            "schema_version": 1,
            "entry_id": entry_id,
            "kind": "charge",
            "account_id": request.account_id,
            "request_id": request.request_id,
            "api_key_id": request.api_key_id,
            "model": request.model,
            "channel": request.channel,
            "billing_mode": request.billing_mode,
            "status": request.status,
            "started_at": request.started_at,
            "completed_at": request.completed_at,
            "input_tokens": usage.input_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "output_tokens": usage.output_tokens,
            "images": usage.images,
            "plan_family": state.family,
            "plan": plan,
            "funding": funding,
            "fallback_key_id": fallback_key,
            "list_cost_usd": list_cost,
            "multiplier": multiplier,
            "supply_state": supply,
            "discount_effective_at": supply_since,
            "catalog_version": version.version,
            "flows": flow_count,
            "charge_usd": charge_usd,
            "debit": debit_amount,
            "unit": unit_of(state),
            "window_5h_id": _window_id_of(owned["5h"]),
            "window_7d_id": _window_id_of(owned["7d"]),
            "period_id": _window_id_of(owned["period"]),
            "overshoot": overshoot,
            "late": late,
            "adjusts_entry_id": None,
            "reason": None,
            "source_topic": source.topic,
            "source_partition": source.partition,
            "source_offset": source.offset,
        }
    )
    emitted.append(Emitted(topics.LEDGER, request.account_id, entry))
    if len(emitted) > 1 and any(  # more than the entry itself: a quota event may be there
        e.topic == topics.QUOTA and e.value.type == "exhausted"  # type: ignore[attr-defined]
        for e in emitted
    ):
        state, routes = publish(state, state.now, "exhausted")
        emitted += routes
    amount_due = debit_amount if funding == "subscription" else charge_usd
    memo = ChargeMemo.of(entry, amount_due)
    return Charged(state, Seen(print_, request.started_at, memo, source.position), emitted)


def _refusal(
    state: AccountState | None,
    request: GatewayRequest,
    version: CatalogVersion | None,
    term: Term | None,
    policy: Policy,
    source: Source,
) -> Rejection | None:
    """Why the request cannot be charged, if it cannot; ``term`` is the one active at its
    start (computed once by the caller, which needs it again)."""
    ahead = policy.too_far_ahead(source.ingest_time, request.started_at, request.completed_at)
    if ahead is not None:
        return Rejection("future_timestamp", ahead)
    if state is None:
        return Rejection("unknown_account", f"account {request.account_id} has no subscription")
    if version is None:
        return Rejection(
            "unknown_model", f"no catalog version is in effect at {request.started_at}"
        )
    if request.model not in version.models:
        return Rejection(
            "unknown_model", f"model {request.model} is not in catalog {version.version}"
        )
    if request.started_at < state.event_clock - policy.dedup_horizon:
        return Rejection(
            "too_late",
            f"started {request.started_at} is older than the {policy.dedup_horizon.days}-day "
            "dedup horizon; charging it could charge it twice",
        )
    if request.billing_mode == "subscription" and term is not None:
        plan = term.plan_at(request.started_at)
        if not allows_model(version, state.family, plan, request.model):
            return Rejection(
                "model_not_allowed",
                f"model {request.model} is not allowed on the {state.family} {plan} plan",
            )
    return None


def _any_exhausted_at(owned: dict[str, Window | None], instant: datetime) -> bool:
    for window in owned.values():  # noqa: SIM110 (a loop: any() over a generator costs more)
        if window is not None and window.exhausted_at(instant):
            return True
    return False


def _any_reset_by(owned: dict[str, Window | None], instant: datetime) -> bool:
    for window in owned.values():  # noqa: SIM110 (a loop: any() over a generator costs more)
        if window is not None and window.resets_at <= instant:
            return True
    return False


def _first_containing(windows: list[Window], instant: datetime) -> Window | None:
    for window in windows:
        if window.contains(instant):
            return window
    return None


def _window_id_of(window: Window | None) -> str | None:
    return None if window is None else window.window_id


def _owning_windows(state: AccountState, started_at: datetime) -> dict[str, Window | None]:
    """The window of each kind a request starting at ``started_at`` belongs to (or None).

    One pass sorts the windows by kind (in their order), rather than one filter per kind."""
    by_kind: dict[str, list[Window]] = {"5h": [], "7d": [], "period": []}
    for window in state.windows:
        by_kind[window.kind].append(window)
    return {
        "5h": attribute(by_kind["5h"], started_at),
        "7d": attribute(by_kind["7d"], started_at),
        "period": _first_containing(by_kind["period"], started_at),
    }


def _debit_windows(
    state: AccountState,
    owned: dict[str, Window | None],
    request: GatewayRequest,
    version: CatalogVersion,
    plan: str,
    paid_usd: Decimal,
    amount: Decimal,
) -> tuple[AccountState, dict[str, Window | None], list[Emitted], Decimal, bool]:
    """Debit the request's windows (``owned``), opening rolling ones it starts; returns the
    debited windows, crossings, overshoot, and whether it is a gap straggler."""
    started = request.started_at
    plan_caps: dict[WindowKind, Decimal | None] | None = None  # computed only to open a window
    owned = dict(owned)
    windows = list(state.windows)
    straggler = False
    for kind in ROLLING_KINDS:
        current = owned[kind]
        if current is None:
            plan_caps = plan_caps or caps(version, state.family, plan, paid_usd)
            opened = Window(
                kind=kind,
                window_id=window_id(state.account_id, kind, started),
                opened_at=started,
                resets_at=started + version.window_length(kind),
                cap=plan_caps[kind],
            )
            insort(windows, opened, key=WINDOW_ORDER)  # where sorting them all would put it
            owned[kind] = opened
        elif current.opened_at > started:
            straggler = True
    debited: dict[str, Window | None] = {}
    emitted: list[Emitted] = []
    overshoot = ZERO
    for owned_kind, window in owned.items():
        if window is None:
            debited[owned_kind] = None
            continue
        result = debit(window, amount, request.completed_at)
        windows[_position(windows, window)] = result.window
        debited[owned_kind] = result.window
        overshoot = max(overshoot, result.overshoot)
        if result.crossed:
            emitted.append(
                quota_event(
                    state.account_id,
                    result.window,
                    unit_of(state),
                    "exhausted",
                    "cap_reached",
                    request.completed_at,
                )
            )
    return state.with_windows(tuple(windows)), debited, emitted, overshoot, straggler


def _position(windows: list[Window], window: Window) -> int:
    """Where ``window`` itself is in the account's windows (ordered by ``WINDOW_ORDER``):
    found by its opening instant, not by a pass over all of them."""
    index = bisect_left(windows, window.opened_at, key=OPENED_AT)
    while windows[index] is not window:
        index += 1
    return index
