"""Why ``metering adjust`` refuses, under the project's one root ``MeteringError``.

Each refusal happens before anything is published: nothing changed anywhere.
"""

from __future__ import annotations

from billing.errors import MeteringError


class CorrectionRefused(MeteringError):
    """Root of the refusals. The message names the entry and what is left of it."""


class UnknownEntry(CorrectionRefused):
    """ClickHouse holds no entry with that id. Check the id; an entry charged moments ago may
    not be stored yet (the sink writes within about a second): try again shortly."""


class NotACharge(CorrectionRefused):
    """The entry is itself an adjustment. Adjust the charge it references instead."""


class FullyReversed(CorrectionRefused):
    """Earlier adjustments already gave back the whole charge: there is nothing left."""


class OverRemainder(CorrectionRefused):
    """The amount exceeds what is left of the charge. Give at most the remainder it names."""


class AdjustmentIdReused(CorrectionRefused):
    """The adjustment id is already used by a different adjustment. Retry with the same amount,
    reason and ``--at``, or choose a new id for a new adjustment."""


class AdjustmentNotPublished(MeteringError):
    """The broker did not acknowledge the adjustment: it may or may not be written. Run the same
    command again with the ``--adjustment-id`` and ``--at`` the message gives: the pipeline
    applies one adjustment id once, however often it is published."""
