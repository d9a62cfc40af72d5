"""Throughput: events/s through the billing worker, end to end, against a raw passthrough.

Run from the repository root (starts a local broker unless KAFKA_BOOTSTRAP_SERVERS is set):

    .venv/bin/python -m bench.throughput [--events 100000] [--accounts 1000] [--partitions 4]

Three measurements on one broker, in one invocation, with the same request records:

1. baseline: ``bench.passthrough`` (aiokafka consume → produce, nothing else) moves the
   records from an input topic to an output topic;
2. one ``metering worker`` (RocksDB tables): ``gateway.requests`` → charged →
   ``metering.ledger`` → the ClickHouse sink (in this process, embedded chDB);
3. two workers of one app on the same partitions.

Each subject is started and warmed up first (subscriptions applied; one record passed
through), then every record is produced as fast as the broker takes it. The rate is the
records divided by the time from the first output record to the last one (Kafka record
timestamps), so start-up is not counted; end to end, to the moment the last row was
queryable in ClickHouse (polled every 20 ms). The run fails if a record is missing,
dead-lettered or charged twice.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from bench import report
from bench.services import (
    Run,
    broker,
    cpu_seconds,
    end_offsets,
    ledger_rows,
    produce,
    scan,
    sink,
    stop_on_sigterm,
    wait_until,
    work_dir,
)
from bench.services import workers as running_workers
from bench.workload import Workload
from schemas import topics


@dataclass(frozen=True)
class Figure:
    subject: str
    events: int
    span_s: float
    """First output record → last output record."""
    cpu_s: float
    """CPU time the subject's processes used (the sink's, in this process, not counted)."""
    end_to_end_s: float | None = None
    """First output record → last ledger row queryable in ClickHouse."""

    @property
    def rate(self) -> float:
        return self.events / self.span_s if self.span_s else float("inf")

    @property
    def per_cpu_second(self) -> float:
        return self.events / self.cpu_s if self.cpu_s else float("inf")

    @property
    def end_to_end_rate(self) -> float | None:
        return None if self.end_to_end_s is None else self.events / self.end_to_end_s


async def passthrough(run: Run, workload: Workload, events: int) -> Figure:
    """Records moved by the raw consume → produce loop (input → ledger topic name)."""
    await run.create_topics()
    source, target = run.topic(topics.REQUESTS), run.topic(topics.LEDGER)
    command = [sys.executable, "-m", "bench.passthrough", run.bootstrap, source, target,
               f"{run.prefix}passthrough"]  # fmt: skip
    with (run.home / "passthrough.log").open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            await produce(run, workload.requests(1, first=events))  # warm-up

            async def warm() -> bool:
                return await end_offsets(run, target) >= 1

            await wait_until(warm, "the passthrough's first record", timeout_s=120)
            cpu = cpu_seconds([proc.pid])
            await produce(run, workload.requests(events))

            async def done() -> bool:
                return await end_offsets(run, target) >= events + 1

            await wait_until(done, f"{events} records through the passthrough")
            cpu = cpu_seconds([proc.pid]) - cpu
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    stamps = sorted((await scan(run, target, events + 1)).timestamps)[1:]
    span = (stamps[-1] - stamps[0]) / 1000
    return Figure("raw aiokafka passthrough (baseline)", events, span, cpu)


async def pipeline(run: Run, workload: Workload, events: int, count: int) -> Figure:
    """Records charged by ``count`` workers, each a ledger row in ClickHouse."""
    await run.create_topics()
    async with sink(run) as (_, client, database), running_workers(run, count) as procs:
        await produce(run, workload.subscriptions())  # warm-up: every account subscribed

        async def subscribed() -> bool:
            return await end_offsets(run, run.topic(topics.ROUTING)) >= workload.accounts

        await wait_until(subscribed, "every subscription applied", timeout_s=300)
        pids = [proc.pid for proc in procs]
        cpu = cpu_seconds(pids)
        await produce(run, workload.requests(events))

        async def stored() -> bool:
            return await asyncio.to_thread(ledger_rows, client, database) >= events

        stored_at = await wait_until(stored, f"{events} ledger rows in ClickHouse")
        cpu = cpu_seconds(pids) - cpu
        rows = ledger_rows(client, database)
    ledger = await scan(run, run.topic(topics.LEDGER), events)
    dead = await end_offsets(run, run.topic(topics.DLQ))
    if rows != events or dead or len(set(ledger.values)) != events:
        raise SystemExit(f"wrong pipeline output: {rows} rows, {dead} dead letters")
    first = min(ledger.timestamps) / 1000
    subject = f"{count} worker{'s' if count > 1 else ''} → ledger → ClickHouse"
    return Figure(subject, events, ledger.span_s, cpu, stored_at - first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    args = parser.parse_args()
    stop_on_sigterm()
    if args.smoke:
        args.events, args.accounts, args.workers = 200, 10, [1]
    asyncio.run(bench(args.events, args.accounts, args.partitions, args.workers))


async def bench(events: int, accounts: int, partitions: int, worker_counts: list[int]) -> None:
    with broker() as (bootstrap, description), work_dir() as home:
        report.header("throughput", description)
        print(f"{events:,} requests over {accounts:,} accounts, {partitions} partitions")
        workload = Workload(accounts, datetime.now(UTC), run=uuid.uuid4().hex[:6])

        def run(name: str) -> Run:
            (home / name).mkdir()
            return Run(bootstrap, f"bench-{uuid.uuid4().hex[:8]}-", partitions, home / name)

        started = time.monotonic()
        baseline = await passthrough(run("passthrough"), workload, events)
        figures = [baseline]
        for count in worker_counts:
            figures.append(await pipeline(run(f"workers-{count}"), workload, events, count))
        rows = [
            (f.subject, f.events, f.rate, "—" if f.end_to_end_rate is None else f.end_to_end_rate,
             f"{(f.end_to_end_rate or f.rate) / baseline.rate:.2f}", f.per_cpu_second,
             f"{f.per_cpu_second / baseline.per_cpu_second:.3f}")
            for f in figures
        ]  # fmt: skip
        report.table(rows, ["subject", "events", "events/s to topic", "events/s to ClickHouse",
                            "× passthrough", "events per CPU-s", "× passthrough"])  # fmt: skip
        print(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
