"""State scale: the per-account table's bytes and a worker's recovery time, by account count.

Run from the repository root (starts a local broker unless KAFKA_BOOTSTRAP_SERVERS is set):

    .venv/bin/python -m bench.state_scale [--accounts 10000 100000 1000000]

For each size N, the ``accounts`` changelog of a fresh worker app is filled with N account
values as the worker writes them (``streams.stores.AccountTable``: a ZenMux Pro or Lilac
Basic state with its three windows open, and its applied offsets), then:

1. baseline: a plain aiokafka consumer reads the whole changelog (the floor of any recovery);
2. cold start: ``metering worker`` (RocksDB) starts with no local state, restores the table
   from the changelog and rebuilds its tick schedule: seconds from launch to "Ready", and
   the process's resident memory once ready;
3. warm restart: the same worker restarted on its local RocksDB files (the usual restart).

Bytes per account: the changelog value (+ key), the RocksDB files, and the worker's resident
memory above an empty worker's (measured first, in the same run).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from bench import report
from bench.services import Run, broker, stop_on_sigterm, work_dir, workers
from bench.workload import Workload, account_id
from billing.catalog import load_catalog
from billing.engine import Engine
from billing.source import Source
from metering.demo.stack import WORKER_START_TIMEOUT_S
from streams.codecs import account_body, deadline_text

APP_ID = "bench"
TABLE = "accounts"
partitioner = DefaultPartitioner()
MIN_RECOVERY_RATE = 200
"""Accounts per second below which a recovery is taken as hung (measured: ≈ 2,000)."""
REBUILT = re.compile(rb"tick schedule rebuilt for (\d+) accounts")


def templates(now: datetime) -> list[dict[str, object]]:
    """Stored values of a ZenMux Pro and a Lilac Basic account after a few requests: the
    state and its next deadline (``AccountTable.save``), offsets added by ``value_of``."""
    workload = Workload(2, now)
    accounts: dict[str, object] = {}
    engine = Engine(load_catalog(), accounts=accounts, seen={}, discounts={})  # type: ignore[arg-type]
    for n, (topic, key, value) in enumerate(workload.subscriptions() + workload.requests(6)):
        engine.process(Source(topic, 0, n), value, key.decode())
    return [
        {"state": account_body(state), "next": deadline_text(state)}  # type: ignore[arg-type]
        for state in accounts.values()
    ]


def value_of(n: int, bodies: list[dict[str, object]]) -> tuple[str, bytes, bytes]:
    """(account, changelog key, value) of account ``n`` as ``AccountTable.save`` writes it:
    Faust serializes a ``str`` table key as JSON, a ``bytes`` value raw."""
    account = account_id(n)
    template = bodies[n % 2]
    named = str(template["state"]["account"])  # type: ignore[index]
    text = orjson.dumps(template).replace(named.encode(), account.encode())
    value = orjson.dumps({**orjson.loads(text), "applied": {"gateway.requests": 10_000_000 + n}})
    return account, orjson.dumps(account), value


async def fill(run: Run, count: int, bodies: list[dict[str, object]]) -> int:
    """Create the table's changelog (compacted, as Faust would) and write ``count`` accounts;
    returns the bytes written (keys + values)."""
    topic = f"{run.prefix}{APP_ID}-{TABLE}-changelog"
    admin = AIOKafkaAdminClient(bootstrap_servers=run.bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, run.partitions, 1, topic_configs={"cleanup.policy": "compact"})]
        )
    finally:
        await admin.close()
    written = 0
    async with AIOKafkaProducer(
        bootstrap_servers=run.bootstrap, linger_ms=20, max_batch_size=1 << 20
    ) as producer:
        partitions = list(range(run.partitions))
        pending = []
        for n in range(count):
            account, key, value = value_of(n, bodies)
            written += len(key) + len(value)
            # the partition Faust writes it to: the one its input records are keyed to
            partition = partitioner(account.encode(), partitions, partitions)
            pending.append(await producer.send(topic, value, key=key, partition=partition))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    return written


async def read_all(run: Run, count: int) -> float:
    """Seconds a plain consumer takes to read the whole changelog (the baseline)."""
    topic = f"{run.prefix}{APP_ID}-{TABLE}-changelog"
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=run.bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, max_poll_records=10_000,
    )  # fmt: skip
    started = time.monotonic()
    await consumer.start()
    seen = 0
    try:
        while seen < count:
            seen += sum(len(r) for r in (await consumer.getmany(timeout_ms=500)).values())
    finally:
        await consumer.stop()
    return time.monotonic() - started


@dataclass(frozen=True)
class Start:
    seconds: float
    rss: int
    rebuilt: int


async def start_worker(run: Run, accounts: int = 0) -> Start:
    """Launch → "Ready" of one worker, its resident memory then, and the accounts whose
    deadlines it rebuilt. The start-up timeout grows with the ``accounts`` to recover."""
    started = time.monotonic()
    timeout = WORKER_START_TIMEOUT_S + accounts / MIN_RECOVERY_RATE
    async with workers(run, 1, APP_ID, start_timeout_s=timeout) as (proc,):
        seconds = time.monotonic() - started
        rss = rss_bytes(proc.pid)
    log = (run.home / f"worker-{APP_ID}-0.log").read_bytes()
    counts = [int(m) for m in REBUILT.findall(log)]
    return Start(seconds, rss, counts[-1] if counts else 0)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


async def bench(sizes: list[int], partitions: int) -> None:
    with broker() as (bootstrap, description), work_dir() as home:
        report.header("state scale", description)
        bodies = templates(datetime.now(UTC) - timedelta(minutes=1))

        def run(name: str) -> Run:
            (home / name).mkdir()
            return Run(bootstrap, f"bench-{uuid.uuid4().hex[:8]}-", partitions, home / name)

        empty = run("empty")
        await empty.create_topics()
        idle = await start_worker(empty)
        rows: list[tuple[object, ...]] = [
            ("0 (empty worker)", "—", "—", "—", idle.seconds, "—", "—", idle.rss / 2**20, "—")
        ]
        for count in sizes:
            sized = run(f"n{count}")
            await sized.create_topics()
            written = await fill(sized, count, bodies)
            floor = await read_all(sized, count)
            cold = await start_worker(sized, count)
            if cold.rebuilt != count:
                raise SystemExit(f"recovered {cold.rebuilt} accounts, wanted {count}")
            warm = await start_worker(sized, count)
            tables = disk_bytes(sized.home / "worker-0" / "faust") / count
            memory = (cold.rss - idle.rss) / count
            rows.append((count, written / count, f"{tables:,.0f}", floor, cold.seconds,
                         f"{(cold.seconds - idle.seconds) / floor:.1f}", warm.seconds,
                         cold.rss / 2**20, f"{memory:,.0f}"))  # fmt: skip
        report.table(rows, ["accounts", "changelog B/account", "RocksDB B/account",
                            "raw read s (baseline)", "cold start s", "(cold − empty) ÷ raw read",
                            "warm restart s", "RSS MiB", "RSS B/account"])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    args = parser.parse_args()
    stop_on_sigterm()
    if args.smoke:
        args.accounts = [200]
    asyncio.run(bench(args.accounts, args.partitions))


if __name__ == "__main__":
    main()
