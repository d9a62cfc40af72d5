"""The rebuild's checkpoint in ClickHouse: per source partition, the offset it has stored up to.

Kept next to the ledger it describes (``{db}.rebuild_progress``), so a checkpoint can never
belong to another store, and ``--fresh`` empties it together with the ledger. It is the
rebuild's own bookkeeping, like the runner's ``schema_migrations``: created here, not by a
migration, and not part of the analysts' schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from metering.warehouse.migration_plan import validate_database

TABLE = "rebuild_progress"

Partition = tuple[str, int]
"""A source partition: (topic with its prefix, partition number)."""

# One row per saved batch and partition. ReplacingMergeTree(next_offset) keeps the furthest
# offset of each partition once merged; reads take max() anyway, so unmerged rows are harmless.
# ORDER BY the partition's identity: a read is "every partition of one source".
_DDL = """
CREATE TABLE IF NOT EXISTS {db}.rebuild_progress
(
    source LowCardinality(String),
    topic String,
    partition Int32,
    next_offset Int64,
    saved_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(next_offset)
ORDER BY (source, topic, partition)
"""

_READ_SQL = """
SELECT topic, partition, max(next_offset)
FROM {db:Identifier}.rebuild_progress
WHERE source = {source:String}
GROUP BY topic, partition
"""

_COLUMNS = ("source", "topic", "partition", "next_offset", "saved_at")
_TYPES = ("LowCardinality(String)", "String", "Int32", "Int64", "DateTime64(6, 'UTC')")


class Checkpoint:
    """Where one source's rebuild stands: ``load`` it, ``save`` after each stored batch."""

    def __init__(self, client: Client, database: str, source: str) -> None:
        self.client = client
        self.database = validate_database(database)
        self.source = source

    def create(self) -> None:
        """Create the table if absent (every rebuild calls this first)."""
        self.client.command(_DDL.replace("{db}", self.database))

    def clear(self) -> None:
        """Forget every source's progress (``--fresh``: the ledger is gone, so is the claim)."""
        self.client.command(f"TRUNCATE TABLE IF EXISTS {self.database}.{TABLE}")

    def load(self) -> dict[Partition, int]:
        """Per partition, the first offset not yet stored (absent: start from the beginning)."""
        rows = self.client.query(
            _READ_SQL, parameters={"db": self.database, "source": self.source}
        ).result_rows
        return {(str(topic), int(partition)): int(offset) for topic, partition, offset in rows}

    def save(self, next_offsets: Mapping[Partition, int]) -> None:
        """Record that everything before these offsets is stored."""
        if not next_offsets:
            return
        now = datetime.now(UTC)
        rows = [
            [self.source, topic, partition, offset, now]
            for (topic, partition), offset in sorted(next_offsets.items())
        ]
        self.client.insert(
            TABLE,
            rows,
            database=self.database,
            column_names=list(_COLUMNS),
            column_type_names=list(_TYPES),
        )
