"""Exact money: every amount is a ``Decimal`` rounded once, half-even, to 12 fractional digits.

12 digits matches the ledger's ``Decimal(38, 12)`` columns, so what the core computes is what
ClickHouse stores; sums of rounded amounts stay exact (ledger total = window total).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

SCALE = Decimal("0.000000000001")
ZERO = Decimal(0)


def rounded(amount: Decimal) -> Decimal:
    """Round an exact intermediate result to the ledger's scale."""
    return amount.quantize(SCALE, rounding=ROUND_HALF_EVEN)
