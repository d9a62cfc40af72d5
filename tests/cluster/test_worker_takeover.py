"""Three workers share 6+ partitions; one is stopped (SIGTERM), then one killed (SIGKILL),
under load: the survivors take over their partitions and tables (standby replicas), and the
ledger in ClickHouse (through the sink) equals the offline replay of the inputs.

Takeover time, as printed per round: from the signal to the first ledger entry appended for
each moved input partition after the victim's process had exited (so by a survivor); the
round's figure is the slowest of its partitions. Beside it, when the survivors' Faust
assignor first showed the moved partitions on them (the group's reassignment). A SIGKILL is
noticed only when the victim's group session expires (``METERING_WORKER_SESSION_TIMEOUT``,
lowered to 10 s here from 60 s), a SIGTERM at once (the victim leaves the group).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from deploy.kafka.config import free_ports
from metering.demo.stack import worker_process
from metering.sink.writer import ClickHouseLedgerStore
from metering.warehouse import migrate
from schemas import topics
from schemas.ledger import LedgerEntry
from tests.cluster.conftest import create_topics, worker_env
from tests.cluster.load import GatewayLoad, LoadShape
from tests.cluster.observe import LedgerTail, input_owners, supply_shown, wall
from tests.cluster.oracle import differences, holds, replayed_ledger
from tests.integration.ledger_pipeline import running_sink, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

APP_ID = "e2e"
WORKERS = 3
SIGNALS = {"stop": signal.SIGTERM, "kill": signal.SIGKILL}


@dataclass(frozen=True)
class Takeover:
    load: LoadShape  # its duration is an upper bound: the load stops after the last round
    partitions: int
    session_timeout_s: float
    rounds: tuple[str, ...]  # in turn, to another worker: "stop" (SIGTERM) or "kill" (SIGKILL)
    rejoin: bool  # after each round a fresh worker joins, so three run again


FAST = Takeover(LoadShape(accounts=30, rate=12, duration=600), 6, 10.0, ("stop", "kill"), False)
FULL = Takeover(
    LoadShape(accounts=80, rate=30, duration=1500),
    12,
    10.0,
    ("stop", "kill", "stop", "kill", "kill"),
    True,
)


@dataclass
class Worker:
    port: int
    proc: subprocess.Popen[bytes]


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(FAST, id="fast"),
        pytest.param(FULL, id="full", marks=[pytest.mark.cluster, pytest.mark.timeout(2400)]),
    ],
)
async def test_survivors_take_over_a_stopped_and_a_killed_worker_and_lose_nothing(
    form: Takeover,
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    clickhouse_client: Client,
    clickhouse_database: str,
    tmp_path: Path,
) -> None:
    bootstrap, prefix = kafka_bootstrap, kafka_topic_prefix
    migrate(clickhouse_client, database=clickhouse_database)
    store = ClickHouseLedgerStore(clickhouse_client, clickhouse_database)
    requests = prefix + topics.REQUESTS
    every_partition = set(range(form.partitions))

    with contextlib.ExitStack() as stack:

        async def start_workers(first: int, count: int) -> list[Worker]:
            """``count`` workers started side by side (each waits for Faust's "Ready")."""
            ports = free_ports(count)
            starting = [
                worker_process(
                    worker_env(
                        bootstrap, prefix, tmp_path / f"w{n}", form.partitions,
                        METERING_WORKER_SESSION_TIMEOUT=str(form.session_timeout_s),
                    ),
                    port, tmp_path / f"w{n}.log", store="rocksdb://", app_id=APP_ID,
                )
                for n, port in zip(range(first, first + count), ports, strict=True)
            ]  # fmt: skip
            entered = await asyncio.gather(
                *(asyncio.to_thread(cm.__enter__) for cm in starting), return_exceptions=True
            )
            for cm, proc in zip(starting, entered, strict=True):
                if not isinstance(proc, BaseException):
                    stack.push(cm.__exit__)
            for proc in entered:
                if isinstance(proc, BaseException):
                    raise proc
            return [Worker(port, proc) for port, proc in zip(ports, entered, strict=True)]

        # given the subscriptions and supply states published before any worker runs (a
        # partition's last records skipped across the start-up rebalances are fetched again
        # by the worker's catch-up, streams/worker.py)
        await create_topics(bootstrap, prefix, form.partitions)
        async with GatewayLoad(bootstrap, prefix, form.load, form.partitions) as load:
            states = await load.publish_setup()

            # and three workers of one app on the partitions, each with its own RocksDB state,
            # every one showing those supply states
            began = time.perf_counter()
            workers = await start_workers(0, WORKERS)
            started = len(workers)
            print(f"\n{WORKERS} workers ready in {time.perf_counter() - began:.1f} s")
            ports = [w.port for w in workers]
            await wait_until(partial(supply_shown, ports, states), "supply states", 120)

            # and the load running, every partition charging (the load puts accounts on every
            # partition, tests/cluster/load.py: with none, a partition could never charge)
            async with (
                running_sink(bootstrap, prefix, clickhouse_client, clickhouse_database),
                LedgerTail(bootstrap, prefix) as tail,
            ):
                load.start()
                await wait_until(
                    partial(_charging, tail, every_partition, 0.0), "every partition charging", 180
                )
                for outage in form.rounds:
                    owners = await wait_until_spread(workers, requests, every_partition)
                    victim = next(w for w in workers if owners.get(w.port))
                    moved = owners[victim.port]
                    survivors = [w for w in workers if w is not victim]

                    # when one is stopped or killed under load
                    signalled = wall()
                    victim.proc.send_signal(SIGNALS[outage])
                    await asyncio.to_thread(victim.proc.wait, 60)
                    exited = wall()
                    workers = survivors

                    # then the group gives its partitions to the survivors, which charge them again
                    deadline = form.session_timeout_s + 180
                    reassigned, _ = await asyncio.gather(
                        wait_until(
                            partial(_owned_by, survivors, requests, moved), "reassignment", deadline
                        ),
                        wait_until(
                            partial(_charging, tail, moved, exited),
                            f"partitions {sorted(moved)} charged again",
                            deadline,
                        ),
                    )
                    firsts = sorted(t - signalled for t in tail.first_after(moved, exited).values())
                    gone = exited - signalled
                    print(
                        f"{outage} ({SIGNALS[outage].name}) of the worker on partitions "
                        f"{sorted(moved)}: exited after {gone:.1f} s; reassigned (survivors' "
                        f"assignor) after {gone + reassigned:.1f} s; first entries of its "
                        f"partitions after {firsts[0]:.1f}-{firsts[-1]:.1f} s: takeover "
                        f"{firsts[-1]:.1f} s"
                    )
                    if form.rejoin:
                        workers += await start_workers(started, 1)
                        started += 1
                await load.stop()

                # then ClickHouse holds exactly the offline replay of the inputs
                expected = await replayed_ledger(bootstrap, prefix)
                stored = await wait_until_stored(store, expected)
        assert differences(expected, stored) == ([], [], {})
        print(
            f"ledger in ClickHouse: {len(expected)} entries from {load.sent} published events "
            f"= the offline replay, field for field ({time.perf_counter() - began:.0f} s in all)"
        )


async def _charging(tail: LedgerTail, partitions: set[int], since: float) -> bool:
    return set(tail.first_after(partitions, since)) >= partitions


async def _owners(workers: list[Worker], topic: str) -> dict[int, set[int]]:
    """The assignment as the first live worker's assignor sees it (web port → partitions)."""
    return await asyncio.to_thread(input_owners, workers[0].port, topic)


async def wait_until_spread(
    workers: list[Worker], topic: str, partitions: set[int]
) -> dict[int, set[int]]:
    """The assignment once every partition is on a live worker and every live worker has some."""
    ports = {w.port for w in workers}
    found: dict[int, set[int]] = {}

    async def spread() -> bool:
        nonlocal found
        found = {port: owned for port, owned in (await _owners(workers, topic)).items() if owned}
        return set(found) == ports and set().union(*found.values()) == partitions

    await wait_until(spread, f"partitions spread over {len(ports)} workers", 120)
    return found


async def _owned_by(survivors: list[Worker], topic: str, partitions: set[int]) -> bool:
    owners = await _owners(survivors, topic)
    ports = {w.port for w in survivors}
    return partitions <= set().union(*(p for port, p in owners.items() if port in ports))


async def wait_until_stored(
    store: ClickHouseLedgerStore, expected: list[LedgerEntry]
) -> list[LedgerEntry]:
    """The stored ledger, once it holds every expected entry id."""

    async def complete() -> bool:
        stored = await asyncio.to_thread(store.stored_entry_ids, expected)
        return holds(expected, stored)

    await wait_until(complete, f"{len(expected)} ledger entries in ClickHouse", 180)
    return await asyncio.to_thread(store.entries)
