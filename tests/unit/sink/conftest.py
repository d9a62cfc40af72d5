"""Fakes for the sink's two I/O edges — the Kafka consumer and the ClickHouse client — that
record every call in one shared log, so tests can assert the order of side effects."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.structs import TopicPartition
from clickhouse_connect.driver.exceptions import OperationalError

from schemas.ledger import LedgerEntry
from tests.factories import at, request, started
from tests.unit.billing.conftest import run_scenario

TOPIC = "metering.ledger"


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    value: bytes | None
    timestamp: int = 1_700_000_000_000


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeConsumer:
    """Hands out queued fetches in order; when the queue is empty it calls ``when_idle``."""

    log: list[Any]
    clock: Clock
    fetches: list[dict[int, list[Record]]] = field(default_factory=list)
    partitions: tuple[int, ...] = (0, 1)
    when_idle: Callable[[], None] | None = None
    idle_advances_clock: bool = True
    commit_error: Exception | None = None
    listener: Any = None
    paused: set[TopicPartition] = field(default_factory=set)
    committed: dict[TopicPartition, int] = field(default_factory=dict)

    async def start(self) -> None:
        self.log.append("start")

    async def stop(self) -> None:
        self.log.append("stop")

    def subscribe(self, topics: Sequence[str], listener: Any) -> None:
        self.listener = listener

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[Any]]:
        if self.paused >= self.assignment():
            self.log.append("poll paused")
            self.clock.now += timeout_ms / 1000
            return {}
        if self.fetches:
            fetch = self.fetches.pop(0)
            self.log.append(("fetch", sum(len(v) for v in fetch.values())))
            return {TopicPartition(TOPIC, p): records for p, records in fetch.items()}
        if self.idle_advances_clock:
            self.clock.now += timeout_ms / 1000
        if self.when_idle is not None:
            self.when_idle()
        return {}

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self.commit_error is not None:
            self.log.append("commit refused")
            raise self.commit_error
        self.log.append(("commit", {tp.partition: o for tp, o in offsets.items()}))
        self.committed.update(offsets)

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(TOPIC, p) for p in self.partitions}

    def pause(self, *partitions: TopicPartition) -> None:
        self.log.append("pause")
        self.paused |= set(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.log.append("resume")
        self.paused -= set(partitions)

    def highwater(self, partition: TopicPartition) -> int | None:
        return 100


@dataclass
class FakeClient:
    """A clickhouse-connect client that keeps inserted entry ids; fails the next N calls."""

    log: list[Any]
    fail_inserts: int = 0
    fail_lookups: int = 0
    stored: list[str] = field(default_factory=list)
    inserts: list[dict[str, Any]] = field(default_factory=list)

    def query(self, query: str, parameters: dict[str, Any] | None = None) -> Any:
        assert parameters is not None
        if self.fail_lookups:
            self.fail_lookups -= 1
            self.log.append("lookup failed")
            raise OperationalError("Connection refused")
        self.log.append("lookup")
        wanted = set(parameters["ids"])
        return SimpleNamespace(result_rows=[(i,) for i in self.stored if i in wanted])

    def insert(self, table: str, data: Any, **kwargs: Any) -> None:
        if self.fail_inserts:
            self.fail_inserts -= 1
            self.log.append(("insert failed", kwargs["settings"]["insert_deduplication_token"]))
            raise OperationalError("HTTPConnectionPool: Connection refused")
        token = kwargs["settings"]["insert_deduplication_token"]
        self.log.append(("insert", token))
        self.inserts.append({"table": table, "data": data, **kwargs})
        names = list(kwargs["column_names"])
        self.stored.extend(data[names.index("entry_id")])


@pytest.fixture(scope="session")
def ledger_entries() -> list[LedgerEntry]:
    """Realistic entries from the billing core: a ZenMux and a Lilac account, a few models."""
    values: list[Any] = [
        started("acct_z", family="zenmux", plan="pro"),
        started("acct_l", family="lilac", plan="basic", paid="10"),
    ]
    for n in range(6):
        values.append(request("acct_z", start=at(n)))
        values.append(request("acct_l", start=at(n), model="anthropic/claude-sonnet-4.5"))
    return run_scenario(values).ledger


def encoded(entry: LedgerEntry) -> bytes:
    return entry.model_dump_json().encode()
