"""The ClickHouse sink: ``metering.ledger`` → ``{db}.ledger``, each entry once, commit after insert.

See README.md in this folder for its invariants and what it does not guarantee.
"""

from metering.sink.batch import Batch, Received, dedup_token
from metering.sink.consumer import LedgerSink, SinkConfig, kafka_consumer
from metering.sink.errors import BatchNotWritten, SinkError
from metering.sink.metrics import SinkMetrics
from metering.sink.rows import COLUMNS, PoisonValue, decode, to_columns
from metering.sink.writer import Backoff, ClickHouseLedgerStore, LedgerWriter

__all__ = [
    "COLUMNS",
    "Backoff",
    "Batch",
    "BatchNotWritten",
    "ClickHouseLedgerStore",
    "LedgerSink",
    "LedgerWriter",
    "PoisonValue",
    "Received",
    "SinkConfig",
    "SinkError",
    "SinkMetrics",
    "decode",
    "dedup_token",
    "kafka_consumer",
    "to_columns",
]
