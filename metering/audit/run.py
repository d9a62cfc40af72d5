"""One audit: the stored bill, the raw log re-folded by the core, the statement and the diff.

The two sides are read independently — ClickHouse through ``metering.audit.stored`` and the
raw input log from Kafka (or a ``LOG.jsonl``) — and meet only in ``diff_entries``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from billing.catalog.model import Catalog
from billing.policy import Policy
from metering.audit.derive import derive
from metering.audit.diff import EntryDiff, diff_entries
from metering.audit.rows import LEDGER_ORDER
from metering.audit.span import AuditSpan
from metering.audit.statement import Statement, build_statement, statement_hash
from metering.audit.stored import StoredRows
from metering.errors import InputError
from metering.replay.collector import collector_paused
from metering.replay.kafka_log import mentions, read_inputs
from metering.replay.logfile import LogRecord, read_log

Progress = Callable[[int, int], None]
"""``(done, total)`` while the raw log is read: records from Kafka, bytes from a file."""


@dataclass(frozen=True)
class AuditReport:
    """``statement`` is the bill as ClickHouse holds it; ``derived_sha256`` the hash of the
    statement built from the core's entries instead. Clean: no diff (then both hashes agree)."""

    account_id: str
    span: AuditSpan
    statement: Statement
    sha256: str
    derived_sha256: str
    diff: list[EntryDiff]
    log_records: int
    stored_entries: int
    derived_entries: int

    @property
    def clean(self) -> bool:
        return not self.diff


def read_log_file(path: Path, account_id: str, on_progress: Progress | None) -> list[LogRecord]:
    """The log's records that may concern the account (a malformed line cannot: skipped)."""
    keep = mentions(account_id)
    try:
        size = path.stat().st_size
        stream = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    records = []
    with stream, collector_paused():
        for number, item in enumerate(read_log(stream)):
            if isinstance(item, LogRecord) and keep(item.source.topic, item.payload):
                records.append(item)
            if on_progress is not None and number % 8192 == 0:
                on_progress(stream.tell(), size)
    if on_progress is not None:
        on_progress(size, size)
    return records


def read_kafka(
    bootstrap_servers: str, prefix: str, account_id: str, on_progress: Progress | None
) -> list[LogRecord]:
    return asyncio.run(read_inputs(bootstrap_servers, prefix, on_progress, account_id))


def audit(
    account_id: str,
    span: AuditSpan,
    stored_rows: StoredRows,
    records: list[LogRecord],
    catalog: Catalog,
    policy: Policy | None = None,
) -> AuditReport:
    """Compare the stored bill of ``account_id`` over ``span`` (``stored_rows``, asked after
    the fold: it may be read in the background meanwhile) with the one ``records`` give."""
    with collector_paused():
        return _audit(account_id, span, stored_rows, records, catalog, policy)


def _audit(
    account_id: str,
    span: AuditSpan,
    stored_rows: StoredRows,
    records: list[LogRecord],
    catalog: Catalog,
    policy: Policy | None,
) -> AuditReport:
    derivation = derive(records, account_id, catalog, policy)
    stored = stored_rows()
    derived = sorted((r for r in derivation.rows if span.holds(r.started_at)), key=LEDGER_ORDER)
    statement = build_statement(account_id, span, stored, derivation.windows)
    sha256 = statement_hash(statement)
    # Row for row equal, in the same order: the same statement (a pure function of the
    # rows) and no diff, without building the one or searching for the other again.
    clean = derived == stored
    derived_statement = (
        statement if clean else build_statement(account_id, span, derived, derivation.windows)
    )
    return AuditReport(
        account_id=account_id,
        span=span,
        statement=statement,
        sha256=sha256,
        derived_sha256=sha256 if clean else statement_hash(derived_statement),
        diff=[] if clean else diff_entries(stored, derived),
        log_records=len(records),
        stored_entries=len(stored),
        derived_entries=len(derived),
    )
