"""The engine's stores over Faust tables: read through, buffer writes, save when told.

Buffering is what lets an agent publish a batch's outputs and wait for the broker's
acknowledgement *before* the state change reaches the changelog (see streams/README.md), and
what makes a batch cheap: a key written by many records of a batch is encoded and written to
the changelog once.
Each account's value also carries, per input topic, the offset of the last record applied
to it: one changelog message holds both, so "state saved" and "record applied" cannot
disagree after a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson

from billing.account import AccountState
from streams.codecs import account_body, account_from_body, deadline_back, deadline_text
from streams.scope import applying

V = TypeVar("V")


class StagedTable(MutableMapping[str, V], Generic[V]):
    """A MutableMapping view of a bytes-valued Faust table with a write buffer."""

    def __init__(
        self, table: Any, encode: Callable[[V], bytes], decode: Callable[[bytes], V]
    ) -> None:
        self.table = table
        self.encode = encode
        self.decode = decode
        self.pending: dict[str, V] = {}
        self.event: Any = None
        """The event being applied: buffered writes are saved in its partition (``scope``)."""
        self.origins: dict[str, Any] = {}

    def __getitem__(self, key: str) -> V:
        if key in self.pending:
            return self.pending[key]
        raw = self.table.get(key)
        if raw is None:
            raise KeyError(key)
        return self.decode(raw)

    def __setitem__(self, key: str, value: V) -> None:
        self.pending[key] = value
        self.origins[key] = self.event

    def __delitem__(self, key: str) -> None:
        raise TypeError("the engine never deletes; expiry is the store owner's job")

    def __iter__(self) -> Iterator[str]:
        return iter(self.table.keys())

    def __len__(self) -> int:
        return len(self.table)

    def save(self) -> None:
        """Write the buffered values to the table (each assignment is a changelog record)."""
        for key, value in self.pending.items():
            with applying(self.origins[key]):
                self.table[key] = self.encode(value)
        self.discard()

    def discard(self) -> None:
        self.pending.clear()
        self.origins.clear()


class AccountTable(StagedTable[AccountState]):
    """Account states, each stored with the last applied offset of every input topic.

    ``position`` is the input record being applied (set by the worker before each fold):
    every account the engine writes meanwhile is marked as having applied it. A stored value
    is read and decoded once per batch (``_envelope``), and each account written in a batch
    is encoded and saved once, with the offsets of the last records applied to it.
    """

    def __init__(self, table: Any) -> None:
        super().__init__(table, self._encode, self._decode)
        self.position: tuple[str, int] | None = None
        self._read: dict[str, tuple[AccountState, dict[str, int]] | None] = {}
        self._applied: dict[str, dict[str, int]] = {}

    @staticmethod
    def _encode(state: AccountState) -> bytes:
        return orjson.dumps({"state": account_body(state), "applied": {}})

    @staticmethod
    def _decode(raw: bytes) -> AccountState:
        return account_from_body(orjson.loads(raw)["state"])

    def _envelope(self, key: str) -> tuple[AccountState, dict[str, int]] | None:
        if key not in self._read:
            raw = self.table.get(key)
            body = None if raw is None else orjson.loads(raw)
            self._read[key] = (
                None if body is None else (account_from_body(body["state"]), body["applied"])
            )
        return self._read[key]

    def __getitem__(self, key: str) -> AccountState:
        if key in self.pending:
            return self.pending[key]
        envelope = self._envelope(key)
        if envelope is None:
            raise KeyError(key)
        return envelope[0]

    def __setitem__(self, key: str, value: AccountState) -> None:
        super().__setitem__(key, value)
        if self.position is not None:
            topic, offset = self.position
            self._applied.setdefault(key, {})[topic] = offset

    def save_again(self, key: str) -> None:
        """Buffer the account as stored, its applied offsets unchanged (``position`` is not
        the record that wrote it)."""
        StagedTable.__setitem__(self, key, self[key])

    def applied(self, account_id: str, topic: str) -> int:
        """Offset of the last ``topic`` record applied to the account (-1 if none), buffered
        writes included."""
        buffered = self._applied.get(account_id, {}).get(topic)
        if buffered is not None:
            return buffered
        envelope = self._envelope(account_id)
        return -1 if envelope is None else int(envelope[1].get(topic, -1))

    def save(self) -> None:
        for key, state in self.pending.items():
            envelope = self._envelope(key)
            applied = {} if envelope is None else dict(envelope[1])
            applied.update(self._applied.get(key, {}))
            value = {"state": account_body(state), "applied": applied, "next": deadline_text(state)}
            with applying(self.origins[key]):
                self.table[key] = orjson.dumps(value)
            self._read[key] = (state, applied)  # what the table holds now: no decode to reread
        super().discard()
        self._applied.clear()

    def deadlines(self) -> Iterator[tuple[datetime, str]]:
        """(next deadline, account) of every stored account that has one, read straight
        from the stored values (nothing is cached). A value saved before deadlines were
        stored beside the state is decoded to find it."""
        for key, raw in self.table.items():
            body = orjson.loads(raw)
            if "next" in body:
                deadline = deadline_back(body["next"])
            else:
                deadline = account_from_body(body["state"]).next_deadline()
            if deadline is not None:
                yield deadline, key

    def discard(self) -> None:
        """Forget buffered writes and what was read (the table may change between batches)."""
        super().discard()
        self._read.clear()
        self._applied.clear()
