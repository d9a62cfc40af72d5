"""The generator: a pure, deterministic function of the config (seed, start instant, sizes) and
the catalog. No wall clock, no I/O; the same inputs give the same events, byte for byte.

What it yields, as ``(at, event)`` in non-decreasing ``at`` (the event time the billing core
uses: a request's ``completed_at`` — gateways publish a request once it is served —, a
discount's ``effective_at``, a lifecycle event's ``at``):

1. Each account's lifecycle (``lifecycle.py``): ``started`` before anything else of it.
2. The supply market (``supply.py``): a snapshot at the start, then live changes.
3. Requests: each account a Poisson process (exponential inter-arrival times) at
   ``rate × weight`` requests per second, its weight skewed (``population.py``); each request
   drawn from the mixes of ``profiles.py`` among the models its plan allows at its start.
   With plan limits on (the default), busy accounts are offered no more than their plan
   sustains (the excess goes to quieter accounts) and arrivals over the plan's RPM or
   concurrency (``limits.py``) are throttled: answered 429, never published.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from billing.catalog.model import Catalog
from schemas.requests import BillingMode, GatewayRequest
from schemas.subscriptions import PlanFamily
from simulator.clock import instant
from simulator.config import SimulationConfig
from simulator.errors import SimulationConfigError
from simulator.events import Event
from simulator.lifecycle import Timeline, build_timeline
from simulator.limits import Limiter, capacity, limits_of, spread
from simulator.population import Account, PlanBook, build_population
from simulator.profiles import PROFILES, Profile
from simulator.seeding import stream
from simulator.supply import supply_changes

MIN_LATENCY_S = 0.001


@dataclass(frozen=True, slots=True)
class Menu:
    """What an account on one plan can ask for: each profile with the models the plan allows."""

    profiles: tuple[Profile, ...]
    profile_weights: tuple[float, ...]
    models: tuple[tuple[str, ...], ...]
    model_weights: tuple[tuple[float, ...], ...]

    @property
    def mean_latency_s(self) -> float:
        total = sum(self.profile_weights)
        return (
            sum(
                w * sum(p.latency_s) / 2
                for p, w in zip(self.profiles, self.profile_weights, strict=True)
            )
            / total
        )

    def pick(self, rng: random.Random) -> tuple[Profile, str]:
        index = rng.choices(range(len(self.profiles)), self.profile_weights)[0]
        model = rng.choices(self.models[index], self.model_weights[index])[0]
        return self.profiles[index], model


class Traffic:
    """A run: its accounts and their subscription timelines, and the event stream."""

    def __init__(self, config: SimulationConfig, catalog: Catalog) -> None:
        version = catalog.at(config.start_utc)
        if version is None:
            raise SimulationConfigError(
                f"start {config.start_utc.isoformat()} is before the catalog's first version"
            )
        self.config = config
        self.book = PlanBook(version)
        self.accounts: tuple[Account, ...] = build_population(config, self.book)
        self.timelines: tuple[Timeline, ...] = tuple(
            build_timeline(account, config, self.book) for account in self.accounts
        )
        self._menus: dict[tuple[PlanFamily, str], Menu] = {}
        self.throttled = 0
        """Arrivals over their plan's RPM or concurrency (answered 429, never published)."""

    def lilac_models(self) -> list[str]:
        """The models simulated Lilac traffic can use: those whose discounts matter."""
        return sorted(
            {
                model
                for profile in PROFILES
                for model, _ in profile.models
                if model in self.book.version.lilac.models
            }
        )

    def rates(self) -> list[float]:
        """Each account's offered requests per second (``limits.spread`` when plan limits
        apply, else ``rate × weight``)."""
        weights = [account.weight for account in self.accounts]
        if not self.config.plan_limits:
            return [self.config.rate * weight for weight in weights]
        capacities = [
            capacity(
                limits_of(self.book.version, account.family, account.plan),
                self._menu(account.family, account.plan).mean_latency_s,
            )
            for account in self.accounts
        ]
        return spread(self.config.rate, weights, capacities)

    def events(self) -> Iterator[tuple[datetime, Event]]:
        """Every event of the run, in non-decreasing event time (ties in creation order)."""
        config = self.config
        start = config.start_utc
        order = itertools.count()
        pending: list[tuple[datetime, int, Event]] = []
        for timeline in self.timelines:
            for at, lifecycle_event in timeline.events:
                heapq.heappush(pending, (at, next(order), lifecycle_event))
        for at, change in supply_changes(config, self.lilac_models()):
            heapq.heappush(pending, (at, next(order), change))

        rngs = [stream(config.seed, "arrivals", account.rank) for account in self.accounts]
        rates = self.rates()
        arrivals = [(rngs[k].expovariate(r), k) for k, r in enumerate(rates) if r > 0]
        heapq.heapify(arrivals)
        limiters = [Limiter() for _ in self.accounts]
        number = 0
        self.throttled = 0
        while arrivals and arrivals[0][0] < config.duration:
            offset, rank = heapq.heappop(arrivals)
            started = instant(start, offset)
            # Nothing created from here on has an earlier event time than ``started``.
            while pending and pending[0][0] <= started:
                at, _, event = heapq.heappop(pending)
                yield at, event
            account = self.accounts[rank]
            plan = self.timelines[rank].plan_at(started)
            if plan is None:
                continue  # canceled: the account sends nothing more
            heapq.heappush(arrivals, (offset + rngs[rank].expovariate(rates[rank]), rank))
            request = self._request(account, plan, started, number + 1, rngs[rank])
            allowed = limits_of(self.book.version, account.family, plan)
            if config.plan_limits and not limiters[rank].admit(
                allowed, started, request.completed_at
            ):
                self.throttled += 1
                continue
            number += 1
            heapq.heappush(pending, (request.completed_at, next(order), request))
        while pending:
            at, _, event = heapq.heappop(pending)
            yield at, event

    def _request(
        self, account: Account, plan: str, started: datetime, number: int, rng: random.Random
    ) -> GatewayRequest:
        profile, model = self._menu(account.family, plan).pick(rng)
        shape = profile.draw(rng)
        mode: BillingMode = "payg" if rng.random() < self.config.payg_share else "subscription"
        if mode == "payg":
            key = account.payg_key_id
        elif shape.channel == "studio":
            key = account.studio_key_id
        else:
            key = account.subscription_key_id
        return GatewayRequest(
            schema_version=1,
            request_id=f"req_{self.config.tag}_{number:08d}",
            account_id=account.account_id,
            api_key_id=key,
            model=model,
            channel=shape.channel,
            billing_mode=mode,
            started_at=started,
            completed_at=instant(started, max(shape.latency_s, MIN_LATENCY_S)),
            status=shape.status,
            usage=shape.usage,
        )

    def _menu(self, family: PlanFamily, plan: str) -> Menu:
        found = self._menus.get((family, plan))
        if found is not None:
            return found
        chosen = []
        for profile in PROFILES:
            allowed = [(m, w) for m, w in profile.models if self.book.allows(family, plan, m)]
            if allowed:
                chosen.append((profile, allowed))
        if not chosen:
            raise SimulationConfigError(
                f"the catalog's {family} plan {plan!r} allows none of the simulated models"
            )
        menu = Menu(
            profiles=tuple(p for p, _ in chosen),
            profile_weights=tuple(p.weight for p, _ in chosen),
            models=tuple(tuple(m for m, _ in allowed) for _, allowed in chosen),
            model_weights=tuple(tuple(w for _, w in allowed) for _, allowed in chosen),
        )
        self._menus[(family, plan)] = menu
        return menu


def generate(config: SimulationConfig, catalog: Catalog) -> Iterator[tuple[datetime, Event]]:
    """The run's events: ``Traffic(config, catalog).events()``."""
    return Traffic(config, catalog).events()
