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
        self.pending.clear()

    def discard(self) -> None:
        self.pending.clear()


class AccountTable(StagedTable[AccountState]):
    """Account states, each stored with the last applied offset of every input topic."""

    def __init__(self, table: Any) -> None:
        super().__init__(table, self._encode_unused, self._state_of)
        self.position: tuple[str, int] | None = None

    @staticmethod
    def _encode_unused(state: AccountState) -> bytes:
        raise NotImplementedError  # saving goes through ``save`` below, which adds offsets

    @staticmethod
    def _state_of(raw: bytes) -> AccountState:
        return account_from_body(orjson.loads(raw)["state"])

    def applied(self, account_id: str, topic: str) -> int:
        """Offset of the last ``topic`` record applied to the account (-1 if none)."""
        raw = self.table.get(account_id)
        if raw is None:
            return -1
        return int(orjson.loads(raw)["applied"].get(topic, -1))

    def save(self) -> None:
        for key, state in self.pending.items():
            raw = self.table.get(key)
            applied = {} if raw is None else orjson.loads(raw)["applied"]
            if self.position is not None:
                applied[self.position[0]] = self.position[1]
            self.table[key] = orjson.dumps({"state": account_body(state), "applied": applied})
        self.pending.clear()
