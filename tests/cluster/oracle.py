"""What the ledger must be: the offline replay of the input topics as they are on the broker.

The inputs are read back (``metering.replay.kafka_log.read_inputs``: every record with its
real partition, offset and append time), so the replay sees exactly what the workers saw,
whatever the load published, retried or cut short. Its entries carry the same ``source_*``
positions as the live ones: the comparison is field for field (``ledger_diff`` of ``rows``,
money as ``Decimal``, so a value read back from ClickHouse at another scale still compares
equal).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from billing.catalog import load_catalog
from metering.demo.report import replay_ledger
from metering.replay.kafka_log import read_inputs
from schemas.ledger import LedgerEntry
from tests.e2e.conftest import ledger_diff


async def replayed_ledger(bootstrap: str, prefix: str) -> list[LedgerEntry]:
    """The entries ``metering replay`` derives from the input topics."""
    return replay_ledger(await read_inputs(bootstrap, prefix), load_catalog())


def rows(entries: Iterable[LedgerEntry]) -> list[dict[str, Any]]:
    return [entry.model_dump() for entry in entries]


def differences(
    expected: list[LedgerEntry], got: list[LedgerEntry]
) -> tuple[list[str], list[str], dict[str, dict[str, tuple[Any, Any]]]]:
    """(missing entry ids, extra entry ids, {entry id: {field: (expected, got)}})."""
    return ledger_diff(rows(expected), rows(got))


def holds(expected: list[LedgerEntry], got_ids: Iterable[str]) -> bool:
    """Whether every expected entry id was got (their content is ``differences``' job)."""
    return {e.entry_id for e in expected} <= set(got_ids)
