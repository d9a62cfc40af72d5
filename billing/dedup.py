"""Idempotency records: what was already applied, keyed by the entry id it produced.

A record remembers the input's content fingerprint (to tell a duplicate from a conflicting
reuse of the same id) and, for charges, what a later correction needs to know.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from typing import NamedTuple

from billing.money import ZERO
from billing.outputs import Duplicate, Rejection
from schemas.base import Contract
from schemas.ledger import Funding, LedgerEntry, Unit


def fingerprint(record: Contract) -> str:
    """Content hash of a validated input: formatting and key order do not matter.

    The bytes hashed are ``model_dump_json(round_trip=True)``, asked of the serializer
    directly (the same bytes, without the wrapper's per-call cost)."""
    canonical = record.__pydantic_serializer__.to_json(record, round_trip=True)
    return hashlib.sha256(canonical).hexdigest()[:32]


class ChargeMemo(NamedTuple):
    """The parts of a charge entry a correction refers to.

    A named tuple, not a frozen dataclass like its neighbours: one is built for every charge,
    and a frozen dataclass sets its sixteen fields one guarded call at a time (a third of
    the charge's own bookkeeping); as immutable, and ``_replace`` for a copy."""

    entry_id: str
    request_id: str
    api_key_id: str
    model: str
    channel: str
    billing_mode: str
    status: str
    started_at: datetime
    plan: str | None
    funding: Funding
    fallback_key_id: str | None
    catalog_version: str
    unit: Unit
    amount: Decimal
    adjusted: Decimal
    window_ids: tuple[str | None, str | None, str | None]

    @classmethod
    def of(cls, entry: LedgerEntry, amount: Decimal) -> ChargeMemo:
        """What to remember of a charge entry; ``amount`` is what a correction may give back.

        The first twelve fields are the entry's own, read from its field dict in one C call
        (a third of the cost of reading them one by one)."""
        return cls._make(
            (
                *_ENTRY_FIELDS(entry.__dict__),
                entry.unit if entry.funding == "subscription" else "usd",  # unit
                amount,
                ZERO,  # adjusted
                (entry.window_5h_id, entry.window_7d_id, entry.period_id),  # window_ids
            )
        )


_ENTRY_FIELDS = itemgetter(*ChargeMemo._fields[: ChargeMemo._fields.index("unit")])
"""``entry_id`` … ``catalog_version``: the memo's fields a ledger entry has under the same names."""


@dataclass(frozen=True, slots=True)
class Seen:
    """One applied input. ``at`` (its start or effect time) decides when it may be forgotten.

    ``source`` is the log position it was read at: the same position read again is not a
    duplicate but the same record re-delivered after a crash, before its account state was
    saved, and must be applied again (see ``is_duplicate``).
    """

    fingerprint: str
    at: datetime
    charge: ChargeMemo | None = None
    source: tuple[str, int, int] | None = None

    def is_duplicate(self, position: tuple[str, int, int]) -> bool:
        return self.source != position


def already_applied(
    prior: Seen | None, fingerprint: str, position: tuple[str, int, int], key: str, conflict: str
) -> Duplicate | Rejection | None:
    """What a previously seen id means for this input: nothing (apply it), a duplicate (same
    content: ignore it) or a conflict (same id, other content: dead-letter it with ``conflict``).
    The very record re-delivered at its own position is not a repeat (see ``Seen``)."""
    if prior is None or not prior.is_duplicate(position):
        return None
    if prior.fingerprint == fingerprint:
        return Duplicate(key)
    return Rejection("conflict", conflict)
