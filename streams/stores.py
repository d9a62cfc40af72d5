"""The engine's stores over Faust tables: read through, buffer writes, save when told.

Buffering is what lets an agent publish a record's outputs and wait for the broker's
acknowledgement *before* the state change reaches the changelog (see streams/README.md).
Each account's value also carries, per input topic, the offset of the last record applied
to it: one changelog message holds both, so "state saved" and "record applied" cannot
disagree after a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Generic, TypeVar

import orjson

from billing.account import AccountState
from streams.codecs import account_body, account_from_body

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

    def __getitem__(self, key: str) -> V:
        if key in self.pending:
            return self.pending[key]
        raw = self.table.get(key)
        if raw is None:
            raise KeyError(key)
        return self.decode(raw)

    def __setitem__(self, key: str, value: V) -> None:
        self.pending[key] = value

    def __delitem__(self, key: str) -> None:
        raise TypeError("the engine never deletes; expiry is the store owner's job")

    def __iter__(self) -> Iterator[str]:
        return iter(self.table.keys())

    def __len__(self) -> int:
        return len(self.table)

    def save(self) -> None:
        """Write the buffered values to the table (each assignment is a changelog record)."""
        for key, value in self.pending.items():
            self.table[key] = self.encode(value)
        self.discard()

    def discard(self) -> None:
        self.pending.clear()


class AccountTable(StagedTable[AccountState]):
    """Account states, each stored with the last applied offset of every input topic.

    A stored value is read and decoded once per record (``_envelope``), however many times
    the worker and the engine ask for it.
    """

    def __init__(self, table: Any) -> None:
        super().__init__(table, self._encode, self._decode)
        self.position: tuple[str, int] | None = None
        self._read: dict[str, tuple[AccountState, dict[str, int]] | None] = {}

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

    def applied(self, account_id: str, topic: str) -> int:
        """Offset of the last ``topic`` record applied to the account (-1 if none)."""
        envelope = self._envelope(account_id)
        return -1 if envelope is None else int(envelope[1].get(topic, -1))

    def save(self) -> None:
        for key, state in self.pending.items():
            envelope = self._envelope(key)
            applied = {} if envelope is None else dict(envelope[1])
            if self.position is not None:
                applied[self.position[0]] = self.position[1]
            self.table[key] = orjson.dumps({"state": account_body(state), "applied": applied})
        self.discard()

    def discard(self) -> None:
        """Forget buffered writes and what was read (the table may change between records)."""
        super().discard()
        self._read.clear()
