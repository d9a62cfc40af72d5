"""Charging one request: dedup, validation against the account, funding, windows, ledger entry.

Steps, in this order (each a rule of SPEC.md "Charging" / "Windows and routing"):
1. A ``request_id`` already charged is a duplicate (same content) or a conflict (DLQ).
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

from collections.abc import Callable
from dataclasses import dataclass, replace
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
from billing.subscription import allows_model, caps, fallback_at, term_at
from billing.windows import ROLLING_KINDS, Window, attribute, debit, window_id
from schemas import topics
from schemas.ledger import Funding, LedgerEntry
from schemas.requests import GatewayRequest

DiscountLookup = Callable[[str, datetime], DiscountPoint | None]


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
    catalog: Catalog,
    discount_at: DiscountLookup,
    policy: Policy,
    source: Source,
) -> Charged | Rejection | Duplicate:
    """Apply one request to its account. Pure: the same inputs give the same outputs."""
    entry_id = charge_entry_id(request.account_id, request.request_id)
    print_ = fingerprint(request)
    # Step 1.
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
    refused = _refusal(state, request, catalog, policy, source)
    if refused is not None:
        return refused
    assert state is not None
    version = catalog.at(request.started_at)
    assert version is not None
    # Step 3.
    late_before = state.event_clock
    state, emitted = advance(state, request.completed_at, policy, by_event=True)
    # Step 4.
    term = term_at(state.terms, request.started_at)
    plan = term.plan_at(request.started_at) if term is not None else None
    owned = _owning_windows(state, request.started_at)
    funding: Funding = "subscription"
    if (
        request.billing_mode == "payg"
        or term is None
        or any(w.exhausted_at(request.started_at) for w in owned.values() if w)
    ):
        funding = "payg"
    fallback_key = None
    if funding == "payg" and request.billing_mode == "subscription":
        setting = fallback_at(state.fallback, request.started_at)
        if setting is not None and setting.enabled:
            fallback_key = setting.key_id
        else:
            funding = "unfunded"
    # Step 5.
    price = version.models[request.model]
    list_cost = list_cost_usd(price, request.usage, request.status)
    multiplier, supply, supply_since = Decimal(1), None, None
    if state.family == "lilac" and funding == "subscription":
        point = discount_at(request.model, request.started_at)
        supply = point.supply_state if point is not None else version.default_supply_state
        supply_since = point.effective_at if point is not None else None
        multiplier = version.multiplier(supply)
    charge_usd = discounted_usd(list_cost, multiplier)
    flow_count = (
        flows(list_cost, version.zenmux.flow, request.status) if state.family == "zenmux" else ZERO
    )
    amount = flow_count if state.family == "zenmux" else charge_usd
    debit_amount, overshoot, straggler = ZERO, ZERO, False
    if funding == "subscription":
        assert term is not None and plan is not None
        state, owned, crossing, overshoot, straggler = _debit_windows(
            state, owned, request, version, plan, term.paid_usd, amount
        )
        debit_amount = amount
        emitted += crossing
    late = straggler or any(w is not None and w.resets_at <= late_before for w in owned.values())
    # Step 6.
    ids = tuple(
        w.window_id if (w := owned.get(k)) is not None else None for k in ("5h", "7d", "period")
    )
    entry = LedgerEntry(
        schema_version=1,
        entry_id=entry_id,
        kind="charge",
        account_id=request.account_id,
        request_id=request.request_id,
        api_key_id=request.api_key_id,
        model=request.model,
        channel=request.channel,
        billing_mode=request.billing_mode,
        status=request.status,
        started_at=request.started_at,
        completed_at=request.completed_at,
        input_tokens=request.usage.input_tokens,
        cached_input_tokens=request.usage.cached_input_tokens,
        output_tokens=request.usage.output_tokens,
        images=request.usage.images,
        plan_family=state.family,
        plan=plan,
        funding=funding,
        fallback_key_id=fallback_key,
        list_cost_usd=list_cost,
        multiplier=multiplier,
        supply_state=supply,
        discount_effective_at=supply_since,
        catalog_version=version.version,
        flows=flow_count,
        charge_usd=charge_usd,
        debit=debit_amount,
        unit=unit_of(state),
        window_5h_id=ids[0],
        window_7d_id=ids[1],
        period_id=ids[2],
        overshoot=overshoot,
        late=late,
        adjusts_entry_id=None,
        reason=None,
        source_topic=source.topic,
        source_partition=source.partition,
        source_offset=source.offset,
    )
    emitted.append(Emitted(topics.LEDGER, request.account_id, entry))
    if any(e.topic == topics.QUOTA and e.value.type == "exhausted" for e in emitted):  # type: ignore[attr-defined]
        state, routes = publish(state, state.now, "exhausted")
        emitted += routes
    amount_due = debit_amount if funding == "subscription" else charge_usd
    memo = ChargeMemo.of(entry, amount_due)
    return Charged(state, Seen(print_, request.started_at, memo, source.position), emitted)


def _refusal(
    state: AccountState | None,
    request: GatewayRequest,
    catalog: Catalog,
    policy: Policy,
    source: Source,
) -> Rejection | None:
    if source.ingest_time is not None:
        latest = source.ingest_time + policy.future_tolerance
        if request.started_at > latest or request.completed_at > latest:
            return Rejection(
                "future_timestamp",
                f"timestamps more than {policy.future_tolerance} after the record was received",
            )
    if state is None:
        return Rejection("unknown_account", f"account {request.account_id} has no subscription")
    version = catalog.at(request.started_at)
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
    term = term_at(state.terms, request.started_at)
    if request.billing_mode == "subscription" and term is not None:
        plan = term.plan_at(request.started_at)
        if not allows_model(version, state.family, plan, request.model):
            return Rejection(
                "model_not_allowed",
                f"model {request.model} is not allowed on the {state.family} {plan} plan",
            )
    return None


def _owning_windows(state: AccountState, started_at: datetime) -> dict[str, Window | None]:
    """The window of each kind a request starting at ``started_at`` belongs to (or None)."""
    owned: dict[str, Window | None] = {
        kind: attribute(state.windows_of(kind), started_at) for kind in ROLLING_KINDS
    }
    owned["period"] = next((w for w in state.windows_of("period") if w.contains(started_at)), None)
    return owned


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
    plan_caps = caps(version, state.family, plan, paid_usd)
    owned = dict(owned)
    windows = list(state.windows)
    straggler = False
    for kind in ROLLING_KINDS:
        current = owned[kind]
        if current is None:
            opened = Window(
                kind=kind,
                window_id=window_id(state.account_id, kind, started),
                opened_at=started,
                resets_at=started + version.window_length(kind),
                cap=plan_caps[kind],
            )
            windows.append(opened)
            owned[kind] = opened
        elif current.opened_at > started:
            straggler = True
    debited: dict[str, Window | None] = {}
    emitted: list[Emitted] = []
    overshoot = ZERO
    by_id = {w.window_id: w for w in windows}
    for owned_kind, window in owned.items():
        if window is None:
            debited[owned_kind] = None
            continue
        result = debit(window, amount, request.completed_at)
        by_id[window.window_id] = result.window
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
    ordered = tuple(sorted(by_id.values(), key=lambda w: (w.opened_at, w.kind)))
    return replace(state, windows=ordered), debited, emitted, overshoot, straggler
