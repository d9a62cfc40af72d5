"""``metering.ticks`` (internal): "time has reached ``at`` for this account", keyed by account.

Faust timers cannot write tables, so a timer publishes ticks and the account's agent applies
them; restores are thereby emitted at a window's reset even when the account is idle.
"""

from __future__ import annotations

from typing import Literal

from schemas.base import Contract, Identifier, Timestamp


class Tick(Contract):
    """Apply every reset and period end of ``account_id`` due at or before ``at``."""

    schema_version: Literal[1]
    account_id: Identifier
    at: Timestamp
