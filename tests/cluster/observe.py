"""What the cluster tests watch: the ledger as it is appended, replicas, and who owns what.

- ``LedgerTail``: every ledger record from the start, with its append time (the producer's
  timestamp: the worker's wall clock when it emitted the entry), read in the background.
- ``ClusterView``: the admin view of the cluster (``describe_topics``, ``describe_configs``):
  partition leaders, partitions whose in-sync replicas are fewer than their replicas, and each
  topic's replication factor and ``min.insync.replicas``.
- ``input_owners``: which worker's consumer holds which input partitions, from the Faust
  assignor's cluster-wide view (``GET /router/topics`` of any worker); ``supply_shown``:
  whether every worker's ``GET /status`` shows the given supply states.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from schemas import topics
from schemas.ledger import LedgerEntry


@dataclass(frozen=True)
class Appended:
    """One ledger record: the entry and when it was appended (ms since the epoch)."""

    entry: dict[str, Any]
    at_ms: int

    @property
    def source_partition(self) -> int:
        return int(self.entry["source_partition"])


class LedgerTail:
    """``async with LedgerTail(bootstrap, prefix) as tail: tail.records``."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.records: list[Appended] = []
        self._consumer = AIOKafkaConsumer(
            prefix + topics.LEDGER,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LedgerTail:
        await self._consumer.start()
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    async def _read(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=500)
            for records in batch.values():
                self.records += [Appended(orjson.loads(r.value), r.timestamp) for r in records]

    def since(self, wall_s: float) -> list[Appended]:
        """Records appended at or after ``wall_s`` (``time.time()``)."""
        return [r for r in self.records if r.at_ms >= wall_s * 1000]

    def first_after(self, partitions: Iterable[int], wall_s: float) -> dict[int, float]:
        """For each input partition, when its first entry after ``wall_s`` was appended (s)."""
        firsts: dict[int, float] = {}
        for record in self.since(wall_s):
            p = record.source_partition
            if p in partitions:
                firsts[p] = min(firsts.get(p, float("inf")), record.at_ms / 1000)
        return firsts

    def entry_ids(self) -> set[str]:
        return {record.entry["entry_id"] for record in self.records}

    def ledger(self) -> list[LedgerEntry]:
        """The ledger by entry id: at-least-once may repeat a record, never change one."""
        by_id: dict[str, dict[str, Any]] = {}
        for record in self.records:
            kept = by_id.setdefault(record.entry["entry_id"], record.entry)
            assert kept == record.entry, f"one entry id, two contents: {kept} / {record.entry}"
        return [LedgerEntry.model_validate_json(orjson.dumps(e)) for e in by_id.values()]


@dataclass(frozen=True)
class TopicReplication:
    factors: frozenset[int]  # the replica counts of its partitions
    min_insync: str


class ClusterView:
    """The admin's view of the cluster, over one client: ``async with ClusterView(b) as v``."""

    def __init__(self, bootstrap: str) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)

    async def __aenter__(self) -> ClusterView:
        await self._admin.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._admin.close()

    async def leader(self, topic: str, partition: int) -> int:
        """The node that leads ``topic[partition]``."""
        (described,) = await self._admin.describe_topics([topic])
        return int(
            next(p["leader"] for p in described["partitions"] if p["partition"] == partition)
        )

    async def replica_gaps(self) -> list[str]:
        """``topic[p] isr [..] of [..]`` for each partition of any topic not fully in sync."""
        return [
            f"{t['topic']}[{p['partition']}] isr {sorted(p['isr'])} of {sorted(p['replicas'])}"
            for t in await self._admin.describe_topics()
            for p in t["partitions"]
            if sorted(p["isr"]) != sorted(p["replicas"])
        ]

    async def replication(self, names: list[str]) -> dict[str, TopicReplication]:
        """Each topic's replica counts and ``min.insync.replicas``, as the cluster says."""
        described = await self._admin.describe_topics(names)
        responses = await self._admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, n, {"min.insync.replicas": None})
                for n in names
            ]
        )
        min_insync = {
            resource["resource_name"]: entry["config_value"]
            for response in responses
            for resource in response.to_object()["resources"]
            for entry in resource["config_entries"]
            if entry["config_names"] == "min.insync.replicas"
        }
        return {
            t["topic"]: TopicReplication(
                frozenset(len(p["replicas"]) for p in t["partitions"]), min_insync[t["topic"]]
            )
            for t in described
        }


def _get(web_port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}{path}", timeout=10) as reply:
        return json.loads(reply.read())


def input_owners(web_port: int, requests_topic: str) -> dict[int, set[int]]:
    """Which worker (by web port) consumes which partitions of ``requests_topic``, as the
    Faust assignor of the worker at ``web_port`` last distributed them."""
    hosts: dict[str, dict[str, list[int]]] = _get(web_port, "/router/topics")
    return {
        int(host.rsplit(":", 1)[1].rstrip("/")): set(assigned.get(requests_topic, []))
        for host, assigned in hosts.items()
    }


async def supply_shown(web_ports: Iterable[int], states: dict[str, str]) -> bool:
    """Whether the ``GET /status`` of every worker shows each model in the given state."""
    for port in web_ports:
        models = (await asyncio.to_thread(_get, port, "/status"))["models"]
        if any(models[m]["current_subscription_supply_state"] != s for m, s in states.items()):
            return False
    return True


def wall() -> float:
    """Now, in seconds since the epoch: the clock ledger append times are on."""
    return time.time()
