"""``metering adjust`` as steps: look the entry up in ClickHouse, decide, publish.

The ledger is never touched here: the adjustment goes to ``accounts.adjustments`` and the
worker's core turns it into a new ``adjustment`` entry referencing the original (crediting
the windows it debited, restoring one it brings back under its cap), which the sink stores.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from clickhouse_connect.driver.exceptions import ClickHouseError

from metering.corrections.remainder import Decision, decide
from metering.errors import ServiceUnavailable
from metering.sink.writer import ClickHouseLedgerStore
from metering.warehouse.client import error_reason
from schemas.adjustments import Adjustment


def issue_adjustment(
    store: ClickHouseLedgerStore,
    publish: Callable[[Adjustment], object],
    *,
    entry_id: str,
    amount: Decimal,
    reason: str,
    adjustment_id: str,
    at: datetime,
) -> Decision:
    """Give back ``amount`` of ``entry_id``; returns what was (or already had been) published.

    1. Read the entry and every adjustment referencing it from ClickHouse.
    2. Decide (pure, ``remainder.decide``): a refusal raises, nothing is published; a retry of
       an adjustment ClickHouse already holds publishes nothing.
    3. Publish the adjustment through the gateway publisher (validated, keyed by the account,
       so it follows the account's charges on their partition); return once acknowledged.
    """
    # Step 1.
    try:
        rows = store.entry_with_adjustments(entry_id)
    except ClickHouseError as exc:
        raise ServiceUnavailable(
            f"cannot read {store.database}.ledger to look up {entry_id}: {error_reason(exc)}"
        ) from exc
    # Step 2.
    decision = decide(rows, entry_id, amount, reason, adjustment_id, at)
    # Step 3.
    if not decision.applied:
        publish(decision.adjustment)
    return decision
