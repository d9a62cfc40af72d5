"""What is left to give back of one ledger entry, and the adjustment that gives part of it back
— or why none may. Pure: the stored rows come in, a decision comes out.

What an adjustment may give back is the core's rule (``billing.charging`` / ``ChargeMemo``):
a subscription-funded charge in the account's unit (Flows or USD), up to its debit; any other
charge in USD, up to its ``charge_usd``. ``tests/e2e/test_adjust_refusals.py`` pins this
module to the core. The core stays the authority: an adjustment that passes here but races
another one in the pipeline is still refused there (a dead letter), never applied twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from pydantic import ValidationError

from billing.corrections import adjustment_entry_id
from metering.corrections.errors import (
    AdjustmentIdReused,
    FullyReversed,
    NotACharge,
    OverRemainder,
    UnknownEntry,
)
from metering.errors import InputError
from schemas.adjustments import Adjustment
from schemas.ledger import LedgerEntry, Unit

MAX_DECIMALS = 12  # the ledger's Decimal(38, 12)
_OPTIONS = {"adjustment_id": "--adjustment-id", "entry_id": "--entry", "reason": "--reason"}


@dataclass(frozen=True)
class Remainder:
    """One charge entry as ClickHouse holds it, and what its adjustments gave back so far."""

    entry: LedgerEntry
    unit: Unit
    charged: Decimal
    adjusted: Decimal

    @property
    def left(self) -> Decimal:
        return self.charged - self.adjusted


@dataclass(frozen=True)
class Decision:
    """The adjustment to publish, the id of the entry the pipeline will make of it, and the
    remainder before it. ``applied``: ClickHouse already holds that very adjustment's entry
    (a retry of one that went through): publish nothing."""

    adjustment: Adjustment
    entry_id: str
    remainder: Remainder
    applied: bool = False


def refundable(entry: LedgerEntry) -> tuple[Unit, Decimal]:
    """The unit of an adjustment of ``entry`` and the most all its adjustments may give back."""
    if entry.funding == "subscription":
        return entry.unit, entry.debit
    return "usd", entry.charge_usd


def given_back(adjustment: LedgerEntry, unit: Unit) -> Decimal:
    """What one adjustment entry gave back, in ``unit`` (its amounts are negative)."""
    return -(adjustment.flows if unit == "flows" else adjustment.charge_usd)


def remainder(entry_id: str, rows: Sequence[LedgerEntry]) -> Remainder:
    """The remainder of ``entry_id`` from its row and its adjustments' rows; refuses an id
    ClickHouse does not hold and an entry that is itself an adjustment."""
    entry = next((row for row in rows if row.entry_id == entry_id), None)
    if entry is None:
        raise UnknownEntry(
            f"no ledger entry {entry_id} in ClickHouse (an entry charged moments ago may not "
            "be stored yet: the sink writes within about a second; try again shortly)"
        )
    if entry.kind != "charge":
        raise NotACharge(
            f"entry {entry_id} is itself an adjustment (of {entry.adjusts_entry_id}): adjust "
            "the charge it references instead"
        )
    unit, charged = refundable(entry)
    adjusted = sum(
        (given_back(row, unit) for row in rows if row.adjusts_entry_id == entry_id), Decimal(0)
    )
    return Remainder(entry, unit, charged, adjusted)


def decide(
    rows: Sequence[LedgerEntry],
    entry_id: str,
    amount: Decimal,
    reason: str,
    adjustment_id: str,
    at: datetime,
) -> Decision:
    """The adjustment giving back ``amount`` of ``entry_id``, or the refusal (see ``errors``)."""
    left = remainder(entry_id, rows)
    adjustment = _adjustment(left.entry.account_id, entry_id, amount, reason, adjustment_id, at)
    future = adjustment_entry_id(adjustment.account_id, adjustment.adjustment_id)
    existing = next((row for row in rows if row.entry_id == future), None)
    if existing is not None:
        same = (given_back(existing, left.unit), existing.reason, existing.completed_at) == (
            adjustment.amount,
            adjustment.reason,
            adjustment.at,
        )
        if not same:
            raise AdjustmentIdReused(
                f"adjustment id {adjustment_id} already gave back "
                f"{show(given_back(existing, left.unit))} "
                f"{left.unit} of {entry_id} at {existing.completed_at.isoformat()} "
                f"({existing.reason!r}): choose a new id for a new adjustment"
            )
        return Decision(adjustment, future, left, applied=True)
    if left.left <= 0:
        raise FullyReversed(
            f"entry {entry_id} is already fully reversed ({show(left.adjusted)} of "
            f"{show(left.charged)} {left.unit} given back)"
        )
    if amount > left.left:
        raise OverRemainder(
            f"amount {show(amount)} exceeds the {show(left.left)} {left.unit} left on "
            f"{entry_id} (charged {show(left.charged)}, given back {show(left.adjusted)})"
        )
    return Decision(adjustment, future, left)


def show(amount: Decimal) -> str:
    """An amount as an operator reads it: exact, no exponent, no trailing zeros."""
    return format(amount.normalize(), "f") if amount else "0"


def parse_amount(text: str) -> Decimal:
    """``--amount`` as an exact decimal: positive, finite, at most 12 fractional digits."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InputError(f"--amount {text!r} is not a decimal number") from None
    if not value.is_finite() or value <= 0:
        raise InputError(f"--amount must be a positive decimal number, got {text!r}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMALS:
        raise InputError(f"--amount {text!r} has more than {MAX_DECIMALS} fractional digits")
    return value


def _adjustment(
    account_id: str, entry_id: str, amount: Decimal, reason: str, adjustment_id: str, at: datetime
) -> Adjustment:
    try:
        return Adjustment(
            schema_version=1,
            adjustment_id=adjustment_id,
            account_id=account_id,
            entry_id=entry_id,
            amount=amount,
            reason=reason,
            at=at,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "adjustment"
        raise InputError(f"{_OPTIONS.get(field, field)}: {first['msg']}") from None
