"""The bill re-derived from the raw input log: the core's ledger entries and windows of one account.

The fold is the one ``metering replay`` and the workers run (``billing.replay.Replay`` over
``billing.engine.Engine``). Only the account's own records and the discount changes are
needed: every other account's state is separate, and ticks only move quota and routing
events, never a ledger entry (``billing.account.AccountState``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from operator import attrgetter

from billing.account import AccountState
from billing.catalog.model import Catalog
from billing.engine import Engine
from billing.policy import Policy
from billing.replay import Replay
from billing.windows import Window
from metering.audit.rows import Row, from_entries
from metering.replay.collector import collector_paused
from metering.replay.logfile import LogRecord
from schemas.ledger import LedgerEntry


class WindowHistory(dict[str, AccountState]):
    """The engine's account store that also keeps the latest version of every window the
    audited account ever had (the state itself drops windows no straggler can reach).

    A dict, so the engine's reads stay C lookups; only its writes are seen here, where the
    account's windows are recorded by id in C (``update`` over a ``zip``)."""

    def __init__(self, account_id: str) -> None:
        super().__init__()
        self.account_id = account_id
        self.windows: dict[str, Window] = {}

    def __setitem__(self, key: str, value: AccountState) -> None:
        super().__setitem__(key, value)
        if key == self.account_id:
            self.windows.update(zip(map(_WINDOW_ID, value.windows), value.windows, strict=True))


_WINDOW_ID = attrgetter("window_id")


@dataclass(frozen=True)
class Derivation:
    """Every ledger entry of the account the core derives, as rows (``metering.audit.rows``)
    in the order the fold emitted them, and the account's windows by id."""

    rows: list[Row]
    windows: dict[str, Window]


def derive(
    records: Iterable[LogRecord], account_id: str, catalog: Catalog, policy: Policy | None = None
) -> Derivation:
    """Fold ``records`` (in log order) and keep what concerns ``account_id``.

    Without ``Policy.tell_conflicts``: a reused request id changes nothing, duplicate or
    conflict, and only the DLQ's code tells them apart, which the audit does not keep.

    Each entry becomes its row as the fold emits it: the entry itself (its field dict and
    the model around it) is freed at once, a fifth of what a month's audit would otherwise
    hold in memory, and the allocator reuses it for the next record."""
    history = WindowHistory(account_id)
    policy = replace(policy or Policy(), tell_conflicts=False)
    engine = Engine(catalog, accounts=history, seen={}, discounts={}, policy=policy)
    with collector_paused():
        rows = from_entries(
            item.value
            for item in Replay(engine).run((r.source, r.payload, r.key) for r in records)
            if isinstance(item.value, LedgerEntry) and item.value.account_id == account_id
        )
    return Derivation(rows, history.windows)
