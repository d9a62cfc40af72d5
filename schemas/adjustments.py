"""``accounts.adjustments``: an operator's correction to one ledger entry, keyed by ``account_id``.

Corrections never edit the ledger: the pipeline turns each into a new ``adjustment`` entry
that references the original ``entry_id``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import Contract, Identifier, PositiveMoney, Timestamp


class Adjustment(Contract):
    """Give back ``amount`` (in the original entry's unit: Flows or USD) of one entry's charge."""

    schema_version: Literal[1]
    adjustment_id: Identifier
    account_id: Identifier
    entry_id: Identifier
    amount: PositiveMoney
    reason: Annotated[str, Field(min_length=3, max_length=500)]
    at: Timestamp
