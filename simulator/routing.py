"""Obey routing: the simulated gateway reads an account's route (``metering.routing``) before
serving each of its subscription-mode requests, as SPEC's gateways do.

What a gateway does per route (SPEC "Windows and routing"; billing/README "Decisions"):

- ``subscription`` (or no route known yet): serve the request as it is.
- ``fallback``: serve it — *unchanged*. The request contract has no field for the fallback
  key, and it needs none: the billing core funds a subscription-mode request that starts in
  an exhausted window from the account's configured fallback key (ledger ``funding = payg``
  with ``fallback_key_id`` set). Rewriting it to ``billing_mode = "payg"`` would record it
  as pay-as-you-go *by choice* (``sql/queries/funding_split.sql``: ``payg_choice``), and
  when the gateway's view is stale (the window already restored) would bill the customer
  for usage the subscription covers. Counted as ``rerouted``.
- ``blocked``: refuse it (seed 004: "rate-limited until the relevant window resets"); it is
  never sent. Counted as ``refused``.

Payg-mode requests and malformed payloads pass untouched: routing is about subscription
funding. A duplicate follows its original's decision (it is the same request re-delivered).

Leakage as the gateway sees it: the route a gateway reads lags the core. When a lookup
returns a new ``fallback``/``blocked`` route whose ``at`` is earlier than requests this gateway
already served on a ``subscription`` view, those requests were served after the exhaustion:
they are counted as ``leaked`` (the core records them as fallback-funded or ``unfunded``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from schemas.requests import GatewayRequest
from schemas.routing import RoutingState
from simulator.events import Delivery
from simulator.stats import SimulationStats


class RouteLookup(Protocol):
    """Where the gateway reads routes: the latest ``metering.routing`` record per account."""

    def route(self, account_id: str) -> RoutingState | None: ...


class RoutingGate:
    """Decides, per delivery, whether the simulated gateway sends it."""

    def __init__(self, lookup: RouteLookup, stats: SimulationStats) -> None:
        self.lookup = lookup
        self.stats = stats
        self._last: tuple[str, bool] | None = None
        self._seen: dict[str, tuple[int, str]] = {}
        self._served: dict[str, list[datetime]] = {}

    def admit(self, delivery: Delivery) -> bool:
        """True if the gateway sends ``delivery``; updates refused / rerouted / leaked."""
        request = delivery.value
        if not isinstance(request, GatewayRequest) or request.billing_mode != "subscription":
            return True
        if delivery.fault == "duplicate" and self._last is not None:
            request_id, admitted = self._last
            if request_id == request.request_id:
                return admitted
        state = self._read(request.account_id)
        route = "subscription" if state is None else state.route
        admitted = route != "blocked"
        if route == "subscription":
            self._served.setdefault(request.account_id, []).append(request.started_at)
        elif route == "fallback":
            self.stats.rerouted += 1
        else:
            self.stats.refused += 1
        self._last = (request.request_id, admitted)
        return admitted

    def settle(self) -> None:
        """Read every served account's route once more (at the end of a run)."""
        for account_id in list(self._served):
            self._read(account_id)

    def _read(self, account_id: str) -> RoutingState | None:
        state = self.lookup.route(account_id)
        if state is None:
            return None
        version = (state.seq, state.route)
        if self._seen.get(account_id) == version:
            return state
        self._seen[account_id] = version
        served = self._served.pop(account_id, [])
        if state.route != "subscription":
            self.stats.leaked += sum(1 for started in served if started >= state.at)
        return state
