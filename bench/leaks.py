"""What a leakage run's output topics say about the simulated accounts: each exhaustion, and the
unfunded charges that followed it (``bench.leakage``).

An exhaustion is an account's distinct exhaustion instant (``metering.quota`` ``exhausted``
events; a request crossing two caps exhausts two windows at one instant: one exhaustion). It
can leak only if it left the account ``blocked`` — without a fallback key — which the routing
record of reason ``exhausted`` says. A leaked request is a ``charge`` with ``funding =
"unfunded"``; it belongs to the latest blocked exhaustion of its account at or before its
``started_at``, if it started before that exhaustion's ``until`` (the window's reset).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from bench.services import Run, end_offsets, scan
from simulator.limits import limits_of
from simulator.traffic import Traffic

Record = dict[str, Any]


async def read_topic(run: Run, name: str, tag: str) -> list[Record]:
    """The records of ``name`` (all of it) that mention ``tag`` (a simulation's run tag, in
    each of its account ids), decoded."""
    topic = run.topic(name)
    found = await scan(run, topic, await end_offsets(run, topic))
    needle = tag.encode()
    return [orjson.loads(v) for v in found.values if v is not None and needle in v]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class Exhaustion:
    account_id: str
    at: datetime
    until: datetime | None
    concurrency: int
    """The plan's concurrency limit (catalog) when the account exhausted."""


@dataclass(frozen=True)
class Leaks:
    per_exhaustion: list[int]
    """Leaked requests of each blocked exhaustion, in the order of ``Exhaustions.blocked``."""
    unattributed: int
    """Unfunded charges after no blocked exhaustion (expected: 0)."""
    over_concurrency: int
    """Blocked exhaustions that leaked more requests than their plan's concurrency."""

    @property
    def total(self) -> int:
        return sum(self.per_exhaustion) + self.unattributed


@dataclass(frozen=True)
class Exhaustions:
    total: int
    blocked: list[Exhaustion]
    concurrency: dict[tuple[str, str], int]
    """Every plan's concurrency limit, (family, plan) → limit."""

    @classmethod
    def of(
        cls, quota: Iterable[Record], routing: Iterable[Record], traffic: Traffic
    ) -> Exhaustions:
        instants = {(q["account_id"], q["at"]) for q in quota if q["type"] == "exhausted"}
        version = traffic.book.version
        accounts = {a.account_id: (a, t) for a, t in zip(traffic.accounts, traffic.timelines,
                                                         strict=True)}  # fmt: skip
        blocked = []
        routes = {(r["account_id"], r["seq"]): r for r in routing}  # a re-delivery once
        for r in sorted(routes.values(), key=lambda r: (r["account_id"], r["seq"])):
            if r["reason"] != "exhausted" or r["route"] != "blocked":
                continue
            at = instant(r["at"])
            account, timeline = accounts[r["account_id"]]
            plan = timeline.plan_at(at) or account.plan
            blocked.append(Exhaustion(
                r["account_id"], at, instant(r["until"]) if r["until"] else None,
                limits_of(version, account.family, plan).concurrency,
            ))  # fmt: skip
        concurrency = {
            (family, plan): limits_of(version, family, plan).concurrency
            for family in ("zenmux", "lilac")
            for plan in traffic.book.plans(family)
        }
        return cls(len(instants), blocked, concurrency)

    def attribute(self, ledger: Iterable[Record]) -> Leaks:
        """Each unfunded charge to the blocked exhaustion it followed."""
        by_account: dict[str, list[int]] = defaultdict(list)
        for n, exhaustion in enumerate(self.blocked):
            by_account[exhaustion.account_id].append(n)
        counts = [0] * len(self.blocked)
        unattributed = 0
        for entry in ledger:
            if entry["kind"] != "charge" or entry["funding"] != "unfunded":
                continue
            started = instant(entry["started_at"])
            owner = None
            for n in by_account.get(entry["account_id"], []):
                exhaustion = self.blocked[n]
                if exhaustion.at <= started and (
                    exhaustion.until is None or started < exhaustion.until
                ):
                    owner = n  # ascending ``at``: the last match is the latest exhaustion
            if owner is None:
                unattributed += 1
            else:
                counts[owner] += 1
        over = sum(c > e.concurrency for c, e in zip(counts, self.blocked, strict=True))
        return Leaks(counts, unattributed, over)
