"""The bill as ClickHouse holds it: the audited account's stored rows, read by a second
process while this one re-folds the raw log, or here when this process has the store open.

The fold is single-threaded Python and the machine has two cores: opening chDB, the query
and the text columns cost about a fifth of a month's audit, and in a child process they
overlap the fold instead of preceding it. Only the columns' text crosses the pipe (cheap to
pickle); this process parses them exactly as ``ClickHouseLedgerStore.rows`` does.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any, Protocol

from billing.errors import MeteringError
from metering.audit.rows import Row, from_tuples
from metering.audit.span import AuditSpan
from metering.errors import ServiceUnavailable
from metering.sink.writer import ClickHouseLedgerStore, rows_of_columns
from metering.warehouse import connect, parse_url
from metering.warehouse.client import error_reason, open_here
from metering.warehouse.migration_plan import validate_database


class StoredRows(Protocol):
    """The stored side of an audit: called once the derived side is known; used as a context
    manager around the audit, which ends whatever it started."""

    def __call__(self) -> list[Row]: ...

    def __enter__(self) -> StoredRows: ...

    def __exit__(self, *exc: object) -> None: ...

    def raise_if_failed(self) -> None:
        """Its error now if it already has one (before the fold spends time for nothing)."""


def stored_rows(url: str, database: str, account_id: str, span: AuditSpan) -> StoredRows:
    """In a child process, unless this one has the store open (a chDB path is locked to the
    process that opened it)."""
    if open_here(url):
        return ReadHere(ClickHouseLedgerStore(connect(url), database), account_id, span)
    return ReadInBackground(url, database, account_id, span)


def unreadable(database: str, exc: BaseException) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"cannot read the ledger of {database} from ClickHouse: {error_reason(exc)}"
    )


class ReadHere:
    """The account's rows over ``span``, read in this process when called."""

    def __init__(self, store: ClickHouseLedgerStore, account_id: str, span: AuditSpan) -> None:
        self.store = store
        self.account_id = account_id
        self.span = span

    def __enter__(self) -> ReadHere:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def raise_if_failed(self) -> None:
        return None

    def __call__(self) -> list[Row]:
        try:
            return from_tuples(self.store.rows(self.account_id, (self.span.start, self.span.end)))
        except Exception as exc:  # any store failure is one readable line, not a traceback
            raise unreadable(self.store.database, exc) from None


class ReadInBackground:
    """The account's rows over ``span``, read by a child process from the moment it is made.

    The child sends its one answer (the columns, or its error) through a pipe that this
    process reads only when called: read while the fold runs, the 50 MB would go through a
    thread fighting the fold for the GIL at every chunk. Leaving it as a context manager
    stops the child, done or not. Mistakes of configuration (the URL, the database name) are
    raised here, at once, not after the fold."""

    def __init__(self, url: str, database: str, account_id: str, span: AuditSpan) -> None:
        parse_url(url)
        self.database = validate_database(database)
        # spawn, not fork: the parent may already run threads (a progress bar, Kafka's reader)
        context = multiprocessing.get_context("spawn")
        self._answer, sender = context.Pipe(duplex=False)
        self._child = context.Process(
            target=_answer_with_columns,
            args=(sender, url, self.database, account_id, span.start, span.end),
            name="audit-ledger-reader",
            daemon=True,
        )
        self._child.start()
        sender.close()  # the child's end: a child that dies closes the pipe (EOFError here)
        self._received: tuple[str, Any] | None = None

    def __enter__(self) -> ReadInBackground:
        return self

    def __exit__(self, *exc: object) -> None:
        self._answer.close()
        if self._child.is_alive():
            self._child.terminate()
        self._child.join()

    def raise_if_failed(self) -> None:
        if self._received is None and self._answer.poll():
            self._received = self._receive()
        if self._received is not None and self._received[0] == "error":
            raise self._received[1]

    def __call__(self) -> list[Row]:
        if self._received is None:
            self._received = self._receive()
        kind, value = self._received
        if kind == "error":
            raise value
        return from_tuples(rows_of_columns(value))

    def _receive(self) -> tuple[str, Any]:
        try:
            received: tuple[str, Any] = self._answer.recv()
        except EOFError:
            received = (
                "error",
                ServiceUnavailable(
                    f"the process reading the ledger of {self.database} from ClickHouse ended "
                    f"without an answer (exit code {self._child.exitcode})"
                ),
            )
        return received


def _answer_with_columns(
    answer: Connection, url: str, database: str, account_id: str, start: datetime, end: datetime
) -> None:
    """The child: the rows' text columns, or the ``MeteringError`` saying why not. It logs
    nothing (its one failure comes back as the audit's one error line) and leaves Ctrl-C to
    the parent, which stops it."""
    logging.disable(logging.CRITICAL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        store = ClickHouseLedgerStore(connect(url), database)
        answer.send(("columns", store.row_columns(account_id, (start, end))))
    except MeteringError as exc:
        answer.send(("error", exc))
    except Exception as exc:
        answer.send(("error", unreadable(database, exc)))
    finally:
        answer.close()
