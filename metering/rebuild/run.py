"""Rebuild the ClickHouse ledger and its rollups from a source, idempotently and resumably.

The order of ``rebuild`` is the guarantee (numbered in its docstring, ``# Step N.`` below):
a chunk's checkpoint is saved only after its entries are stored, so a run that stops
anywhere leaves "stored up to the checkpoint" true, and the next run redoes at most the one
chunk after it — whose entries it then finds stored and skips, so no entry reaches the
rollup views twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from metering.rebuild.checkpoint import Checkpoint, Partition
from metering.rebuild.chunks import Chunk, chunked
from metering.rebuild.errors import CountMismatch, RebuildError, StoreFailed
from metering.rebuild.sources import EntrySource
from metering.sink.batch import dedup_token
from metering.sink.writer import ClickHouseLedgerStore
from metering.warehouse.client import error_reason
from metering.warehouse.migrations import DEFAULT_MIGRATIONS_DIR, migrate, reapply
from metering.warehouse.teardown import LedgerObjects, drop_ledger

logger = logging.getLogger(__name__)

_DISTINCT_SQL = "SELECT uniqExact(entry_id) FROM {db:Identifier}.ledger"


@dataclass
class Tally:
    """Running counts of one rebuild, handed to the progress hook after every chunk."""

    source: str
    total: int = 0  # items the source holds (ledger: records; inputs: derived entries)
    read: int = 0  # items read so far
    resumed: int = 0  # items before the checkpoint: stored by an earlier run, only counted
    inserted: int = 0  # entries written by this run
    skipped: int = 0  # entries past the checkpoint already stored (or repeated in the source)
    poison: int = 0  # ledger records that are not a LedgerEntry (skipped, as the sink does)
    chunks: int = 0  # chunks written by this run


@dataclass(frozen=True)
class Rebuilt:
    """The outcome: the tally, the distinct entries read and stored, and what was dropped."""

    tally: Tally
    entries: int
    stored: int
    dropped: LedgerObjects | None = None


@dataclass
class _Run:
    store: ClickHouseLedgerStore
    checkpoint: Checkpoint
    done: dict[Partition, int]
    tally: Tally
    ids: set[str] = field(default_factory=set)

    def write(self, chunk: Chunk) -> None:
        """Step 5 for one chunk (blocking: called in a thread)."""
        self.ids.update(entry.entry_id for entry in chunk.entries())
        self.tally.read += len(chunk.items)
        self.tally.poison += sum(item.entry is None for item in chunk.items)
        self.tally.resumed += chunk.resumed(self.done)
        moved = chunk.next_offsets(self.done)
        if not moved:
            return  # stored in full by an earlier run
        # Step 5a.
        past = sum(item.entry is not None and not item.done(self.done) for item in chunk.items)
        pending = chunk.pending(self.done)
        stored = self.store.stored_entry_ids(pending)
        fresh = [entry for entry in pending if entry.entry_id not in stored]
        # Step 5b.
        if fresh:
            self.store.insert(fresh, dedup_token(f"rebuild:{self.tally.source}", {}, fresh))
        # Step 5c.
        self.checkpoint.save(moved)
        self.done.update(moved)
        self.tally.inserted += len(fresh)
        self.tally.skipped += past - len(fresh)
        self.tally.chunks += 1


async def rebuild(
    client: Client,
    database: str,
    source: EntrySource,
    *,
    fresh: bool = False,
    chunk_size: int = 5000,
    migrations_dir: Path = DEFAULT_MIGRATIONS_DIR,
    cluster: str = "",
    on_chunk: Callable[[Tally], None] | None = None,
) -> Rebuilt:
    """Fill ``{database}.ledger`` (and through its views, the rollups) from ``source``.

    1. Open the source: Kafka reachable, its extent fixed (nothing in ClickHouse touched yet).
    2. ``fresh``: drop the ledger, the views it feeds and their rollup tables; clear the
       checkpoint of every source.
    3. Apply pending migrations, then run the applied ones again (``IF NOT EXISTS``): that
       recreates whatever step 2 dropped; create the checkpoint table.
    4. Load this source's checkpoint (per partition, the first offset not stored).
    5. For each chunk of the source, cut at record boundaries: count its entry ids; if it
       reaches past the checkpoint,
       a. keep its entries past the checkpoint, each id once, minus those ClickHouse holds;
       b. insert them with a dedup token (a digest of their ids: the same rows retried land
          once, in the ledger and in every rollup);
       c. only then save the checkpoint past the chunk; report progress (``on_chunk``).
    6. Count check: distinct entry ids in ClickHouse == distinct entry ids the source gave,
       else ``CountMismatch``.

    ``cluster``: the store's cluster form (``metering/warehouse/cluster.py``); the rebuild
    writes through the Distributed ``ledger`` like the sink, but ``fresh`` is refused there
    (dropping the replicated local tables on every node is not done here).
    """
    if fresh and cluster:
        raise RebuildError(
            f"--fresh drops single-node tables only; on cluster {cluster} drop {database}'s "
            "ledger and rollup tables ON CLUSTER by hand, then run `metering rebuild`"
        )
    # Step 1.
    async with source:
        tally = Tally(source.name, total=source.total)
        store = ClickHouseLedgerStore(client, database)
        checkpoint = Checkpoint(client, database, source.name)
        with _store_errors("prepare the ledger"):
            # Step 2.
            dropped = (
                await asyncio.to_thread(_drop, client, database, checkpoint) if fresh else None
            )
            # Step 3.
            await asyncio.to_thread(_schema, client, database, migrations_dir, cluster, checkpoint)
            # Step 4.
            done = await asyncio.to_thread(checkpoint.load)
        run = _Run(store, checkpoint, done, tally)
        if done:
            logger.info("resuming the %s rebuild from its checkpoint %s", source.name, done)
        # Step 5.
        async for chunk in chunked(source.items(), chunk_size):
            with _store_errors("store a chunk"):
                await asyncio.to_thread(run.write, chunk)
            if on_chunk is not None:
                on_chunk(tally)
    # Step 6.
    with _store_errors("count the ledger"):
        stored = await asyncio.to_thread(_distinct, client, database)
    entries = len(run.ids)
    if stored != entries:
        raise CountMismatch(_mismatch(database, source.description, stored, entries))
    return Rebuilt(tally, entries=entries, stored=stored, dropped=dropped)


def _drop(client: Client, database: str, checkpoint: Checkpoint) -> LedgerObjects:
    dropped = drop_ledger(client, database)
    checkpoint.clear()
    logger.info("dropped %s from %s", ", ".join(dropped.names) or "nothing", database)
    return dropped


def _schema(
    client: Client, database: str, migrations_dir: Path, cluster: str, checkpoint: Checkpoint
) -> None:
    migrate(client, migrations_dir=migrations_dir, database=database, cluster=cluster)
    reapply(client, migrations_dir=migrations_dir, database=database, cluster=cluster)
    checkpoint.create()


def _distinct(client: Client, database: str) -> int:
    return int(client.query(_DISTINCT_SQL, parameters={"db": database}).result_rows[0][0])


def _mismatch(database: str, source: str, stored: int, entries: int) -> str:
    if stored < entries:
        why = (
            f"{entries - stored} entries are missing although checkpointed (was the ledger "
            "emptied by hand?): run `metering rebuild --fresh`"
        )
    else:
        why = (
            f"{stored - entries} entries come from elsewhere (a sink still writing past the "
            "rebuild's end offsets?): stop it and check again"
        )
    return (
        f"count check failed: {database}.ledger holds {stored} distinct entries, {source} "
        f"gave {entries}; {why}"
    )


@contextmanager
def _store_errors(what: str) -> Iterator[None]:
    """ClickHouse driver errors as one line that says the rebuild can continue."""
    try:
        yield
    except ClickHouseError as exc:
        raise StoreFailed(
            f"ClickHouse failed to {what} ({error_reason(exc)}); what is stored stays "
            "stored: run the rebuild again and it continues from its checkpoint"
        ) from exc
