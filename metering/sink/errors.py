"""Errors of the ledger sink, under the project's one root ``MeteringError``."""

from __future__ import annotations

from billing.errors import MeteringError


class SinkError(MeteringError):
    """Root of the sink's errors."""


class BatchNotWritten(SinkError):
    """The sink stopped while ClickHouse was still refusing a batch.

    Nothing is lost: the batch was neither inserted nor committed, so its records are read
    again when the sink next starts. Bring ClickHouse back (the message says what it
    answered) and start the sink again.
    """
