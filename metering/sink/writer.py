"""Writing batches to ``{db}.ledger``: skip what is stored, insert with a dedup token, retry.

``ClickHouseLedgerStore`` is the synchronous part (the chDB client has no async API); the
``LedgerWriter`` calls it through ``asyncio.to_thread`` and retries each call with
exponential backoff until it succeeds: a batch is never dropped, only delayed. What to do
between attempts (``wait``) and when to stop trying (``give_up``) are the caller's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from clickhouse_connect.driver.client import Client

from metering.sink.batch import dedup_token
from metering.sink.errors import BatchNotWritten
from metering.sink.metrics import SinkMetrics
from metering.sink.rows import (
    COLUMN_NAMES,
    COLUMN_TYPES,
    LEDGER_TABLE,
    MONEY_COLUMNS,
    MONEY_SCALE,
    TIME_COLUMNS,
    to_columns,
)
from metering.warehouse.client import error_reason
from metering.warehouse.migration_plan import validate_database
from schemas.ledger import LedgerEntry

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Entries of the batch already in the ledger. The account and started_at bounds let the
# primary key (account_id, started_at, entry_id) skip everything else; no FINAL: any copy
# of an entry_id means it is stored.
_STORED_SQL = """
SELECT DISTINCT entry_id
FROM {db:Identifier}.ledger
WHERE account_id IN {accounts:Array(String)}
  AND started_at >= {lo:DateTime64(6, 'UTC')}
  AND started_at <= {hi:DateTime64(6, 'UTC')}
  AND entry_id IN {ids:Array(String)}
"""


# Every stored entry once (FINAL collapses re-deliveries), optionally of one account and of
# a started_at range, in the ledger's own order.
_ENTRIES_SQL = """
SELECT {columns}
FROM {{db:Identifier}}.ledger FINAL
WHERE ({{account:String}} = '' OR account_id = {{account:String}})
  AND started_at >= {{lo:DateTime64(6, 'UTC')}}
  AND started_at < {{hi:DateTime64(6, 'UTC')}}
ORDER BY account_id, started_at, entry_id
"""
_EVER = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))

# One entry and the adjustments that reference it, each once. Neither id leads the primary
# key: the bloom filters on entry_id and adjusts_entry_id (0002_ledger.sql) skip the granules.
_ENTRY_SQL = """
SELECT {columns}
FROM {{db:Identifier}}.ledger FINAL
WHERE entry_id = {{entry_id:String}} OR adjusts_entry_id = {{entry_id:String}}
ORDER BY started_at, completed_at, entry_id
"""


class LedgerStore(Protocol):
    """The two calls the sink makes on the store (blocking; run in a thread)."""

    def stored_entry_ids(self, entries: Sequence[LedgerEntry]) -> set[str]: ...

    def insert(self, entries: Sequence[LedgerEntry], token: str) -> None: ...


def _aware(value: object) -> object:
    """DateTime64(6, 'UTC') may come back naive (chDB): it is UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _entry(row: Sequence[object]) -> LedgerEntry:
    """One row of ``COLUMN_NAMES`` back in the contract's shape."""
    return LedgerEntry.model_validate(
        {name: _aware(value) for name, value in zip(COLUMN_NAMES, row, strict=True)}
    )


_ROW_COLUMNS = tuple(
    f"toDecimalString({name}, {MONEY_SCALE})"
    if name in MONEY_COLUMNS
    else f"concat(toString({name}), '+00:00')"
    if name in TIME_COLUMNS
    else name
    for name in COLUMN_NAMES
)
"""What ``rows`` selects: ``COLUMN_NAMES``, money with all the ledger's fractional digits and
instants in UTC with their offset, as text (a NULL stays NULL)."""


def _parsed(name: str, column: Sequence[Any]) -> Sequence[Any]:
    """One column of ``_ROW_COLUMNS`` as the contract's values."""
    if name in TIME_COLUMNS:
        return [None if text is None else datetime.fromisoformat(text) for text in column]
    if name in MONEY_COLUMNS:
        return list(map(Decimal, column))
    return column


def rows_of_columns(columns: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """``ClickHouseLedgerStore.row_columns`` as rows: money and instants parsed in C, the
    same values, exponents and ``UTC`` as the driver's own readers, which build each one in
    Python and cost most of the read."""
    if not columns:
        return []
    parsed = [_parsed(name, column) for name, column in zip(COLUMN_NAMES, columns, strict=True)]
    return list(zip(*parsed, strict=True))


def _param_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class ClickHouseLedgerStore:
    """``{database}.ledger`` through a clickhouse-connect client (chDB or a server)."""

    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.database = validate_database(database)

    def stored_entry_ids(self, entries: Sequence[LedgerEntry]) -> set[str]:
        if not entries:
            return set()
        parameters = {
            "db": self.database,
            "accounts": sorted({e.account_id for e in entries}),
            "lo": _param_time(min(e.started_at for e in entries)),
            "hi": _param_time(max(e.started_at for e in entries)),
            "ids": [e.entry_id for e in entries],
        }
        rows = self.client.query(_STORED_SQL, parameters=parameters).result_rows
        return {str(row[0]) for row in rows}

    def entries(
        self,
        account_id: str | None = None,
        span: tuple[datetime, datetime] = _EVER,
    ) -> list[LedgerEntry]:
        """The stored ledger (of one account; started in ``[span)``), each entry once, back in
        the contract's shape."""
        sql = _ENTRIES_SQL.format(columns=", ".join(COLUMN_NAMES))
        parameters = {
            "db": self.database,
            "account": account_id or "",
            "lo": _param_time(span[0]),
            "hi": _param_time(span[1]),
        }
        return [_entry(row) for row in self.client.query(sql, parameters=parameters).result_rows]

    def rows(
        self, account_id: str, span: tuple[datetime, datetime] = _EVER
    ) -> list[tuple[Any, ...]]:
        """``entries`` of one account as tuples of ``COLUMN_NAMES`` with UTC-aware times,
        without building models: an audit compares 100k of them."""
        return rows_of_columns(self.row_columns(account_id, span))

    def row_columns(
        self, account_id: str, span: tuple[datetime, datetime] = _EVER
    ) -> Sequence[Sequence[Any]]:
        """What ``rows`` parses: the columns of ``COLUMN_NAMES``, money and instants as text
        (``_ROW_COLUMNS``); cheap to send to another process."""
        sql = _ENTRIES_SQL.format(columns=", ".join(_ROW_COLUMNS))
        parameters = {
            "db": self.database,
            "account": account_id,
            "lo": _param_time(span[0]),
            "hi": _param_time(span[1]),
        }
        return self.client.query(sql, parameters=parameters).result_columns

    def entry_with_adjustments(self, entry_id: str) -> list[LedgerEntry]:
        """The entry ``entry_id`` and every adjustment referencing it, each once (empty when
        ClickHouse does not hold it): what ``metering adjust`` checks before it publishes."""
        sql = _ENTRY_SQL.format(columns=", ".join(COLUMN_NAMES))
        result = self.client.query(sql, parameters={"db": self.database, "entry_id": entry_id})
        return [_entry(row) for row in result.result_rows]

    def insert(self, entries: Sequence[LedgerEntry], token: str) -> None:
        self.client.insert(
            LEDGER_TABLE,
            to_columns(entries),
            database=self.database,
            column_names=list(COLUMN_NAMES),
            column_type_names=list(COLUMN_TYPES),
            column_oriented=True,
            settings={
                "insert_deduplicate": 1,
                "insert_deduplication_token": token,
                # The rollup views dedup the retried block too (their targets have a window).
                "deduplicate_blocks_in_dependent_materialized_views": 1,
            },
        )


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``first_s``, then × ``factor`` per failure, at most ``max_s``."""

    first_s: float = 0.1
    factor: float = 2.0
    max_s: float = 10.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
        return float(min(self.max_s, self.first_s * self.factor ** max(0, failures - 1)))


Wait = Callable[[float], Awaitable[None]]


class LedgerWriter:
    """Writes one batch: which entries are new (``unstored``), then ``insert`` them once."""

    def __init__(
        self, store: LedgerStore, metrics: SinkMetrics, backoff: Backoff | None = None
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.backoff = backoff or Backoff()

    async def unstored(
        self, entries: Sequence[LedgerEntry], wait: Wait, give_up: Callable[[], bool]
    ) -> list[LedgerEntry]:
        """The entries whose ``entry_id`` the ledger does not hold yet, in order.

        Asked again after each failure until the store answers. Raises ``BatchNotWritten``
        only when ``give_up()`` turns true while the store still fails.
        """
        if not entries:
            return []
        stored = await self._retry(
            "look up stored entries", lambda: self.store.stored_entry_ids(entries), wait, give_up
        )
        return [e for e in entries if e.entry_id not in stored]

    async def insert(
        self,
        topic: str,
        ranges: dict[int, tuple[int, int]],
        entries: Sequence[LedgerEntry],
        wait: Wait,
        give_up: Callable[[], bool],
    ) -> str:
        """Insert ``entries`` with the batch's dedup token; returns the token.

        The rows and the token are fixed before the first attempt, so every retry sends the
        identical block with the identical token and an attempt that did land (a timeout
        after the server wrote it) is kept once. Raises ``BatchNotWritten`` only when
        ``give_up()`` turns true while the store still fails.
        """
        token = dedup_token(topic, ranges, entries)

        def insert() -> None:
            started = time.perf_counter()
            self.store.insert(entries, token)
            self.metrics.insert_seconds.observe(time.perf_counter() - started)

        await self._retry("insert a batch", insert, wait, give_up)
        return token

    async def _retry(
        self, what: str, call: Callable[[], T], wait: Wait, give_up: Callable[[], bool]
    ) -> T:
        failures = 0
        while True:
            try:
                return await asyncio.to_thread(call)
            except Exception as exc:  # any store failure: wait and retry, never drop the batch
                failures += 1
                reason = error_reason(exc)
                if give_up():
                    raise BatchNotWritten(
                        f"stopped while ClickHouse still failed to {what} "
                        f"({failures} attempts; last: {reason}); the batch was not committed "
                        "and is read again on the next start"
                    ) from exc
                self.metrics.retries.inc()
                delay = self.backoff.delay(failures)
                log = logger.error if failures % 10 == 0 else logger.warning
                log(
                    "cannot %s (attempt %d: %s); retrying in %.2f s, consumption paused",
                    what,
                    failures,
                    reason,
                    delay,
                )
                await wait(delay)
