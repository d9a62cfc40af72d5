"""Errors of ``metering rebuild``, under the project's one root ``MeteringError``."""

from __future__ import annotations

from billing.errors import MeteringError


class RebuildError(MeteringError):
    """Root of the rebuild's errors. Whatever was stored stays stored, and the checkpoint says
    how far: run ``metering rebuild`` again and it continues from there."""


class SourceMissing(RebuildError):
    """The topic(s) to rebuild from do not exist or are empty. Nothing in ClickHouse was
    touched: check ``KAFKA_BOOTSTRAP_SERVERS`` and ``METERING_TOPIC_PREFIX``."""


class StoreFailed(RebuildError):
    """ClickHouse refused a statement of the rebuild (the message has its answer). Fix the
    cause and run the rebuild again: it continues from its checkpoint."""


class CountMismatch(RebuildError):
    """After the rebuild, ClickHouse does not hold exactly the distinct entries the source
    gave. Fewer: rows went missing after they were checkpointed (a table emptied by hand):
    rebuild with ``--fresh``. More: something else wrote to the ledger (a sink running
    past the rebuild's end offsets, rows from another source): stop it and check again."""
