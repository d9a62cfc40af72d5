"""Latency under load: exhaustion → routing, reset → restored routing, event → ClickHouse row.

Run from the repository root (starts a local broker unless KAFKA_BOOTSTRAP_SERVERS is set):

    .venv/bin/python -m bench.latency [--rate 5000] [--probes 60] [--accounts 2000]

One worker (RocksDB tables) and the ClickHouse sink (in this process, embedded chDB) run on a
catalog whose "5-hour" window lasts ``RESET_S`` seconds (caps as shipped). Background
accounts send ``--rate`` requests/s for the whole run. Meanwhile, every ``--interval``
seconds a probe account (ZenMux Pro, no fallback) sends one request of 40 images, whose
charge (≈ 63 Flows) crosses its 50-Flow cap. Three figures, each from every probe:

- exhaustion: the probe's append (its Kafka record timestamp) → its ``blocked`` routing
  record read by a consumer of ``metering.routing``;
- restore: the window's ``resets_at`` → its ``subscription`` (reason ``reset``) routing
  record read; the probe account sends nothing after its crossing request;
- freshness: the probe's append → its ledger row returned by a ClickHouse query (polled
  every ``FRESHNESS_POLL_S``).

Baseline, in the same run and under the same load: the Kafka floor, each probe also
appended to a topic of its own and read back by a plain consumer (append → readable).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from clickhouse_connect.driver.client import Client

from bench import report
from bench.services import (
    Run,
    broker,
    end_offsets,
    produce,
    sink,
    stop_on_sigterm,
    wait_until,
    work_dir,
    workers,
)
from bench.workload import Workload, account_id
from billing.catalog import default_catalog_path
from schemas import topics

RESET_S = 10
"""The bench catalog's "5-hour" window, in seconds: how long after a probe its restore is due."""
FRESHNESS_POLL_S = 0.05
FLOOR_TOPIC = "bench.floor"
PROBE_BASE = 9_000_000
"""Probe accounts are numbered from here, apart from the background accounts."""


def short_window_catalog(path: Path) -> Path:
    document = yaml.safe_load(default_catalog_path().read_text(encoding="utf-8"))
    for version in document["versions"]:
        version["window_seconds"]["5h"] = RESET_S
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@dataclass
class Probes:
    """When each probe was appended and when each of its effects was first seen (epoch s)."""

    appended: dict[str, float] = field(default_factory=dict)
    resets_at: dict[str, float] = field(default_factory=dict)
    blocked: dict[str, float] = field(default_factory=dict)
    restored: dict[str, float] = field(default_factory=dict)
    stored: dict[str, float] = field(default_factory=dict)
    floor: dict[str, float] = field(default_factory=dict)

    def latencies(self, seen: dict[str, float], since: dict[str, float]) -> list[float]:
        return [seen[a] - since[a] for a in seen if a in since]


def crossing_request(workload: Workload, n: int, now: datetime) -> tuple[str, bytes, bytes]:
    """A 40-image request of probe ``n`` that started a second ago: ≈ 63 Flows > the 50 cap."""
    account = account_id(PROBE_BASE + n)
    started = now - timedelta(seconds=1)
    _, key, value = workload.request(PROBE_BASE + n, account, started)
    body = orjson.loads(value)
    body.update(model="nanobanana/nanobanana-pro", completed_at=body["started_at"])
    body["usage"] = {"input_tokens": 200, "cached_input_tokens": 0, "output_tokens": 0,
                     "images": 40}  # fmt: skip
    return topics.REQUESTS, key, orjson.dumps(body)


async def background(
    run: Run, workload: Workload, rate: float, stop: asyncio.Event
) -> tuple[int, float]:
    """Requests of the background accounts at ``rate`` per second until ``stop``: how many,
    in how many seconds."""
    sent = 0
    started = time.monotonic()
    async with AIOKafkaProducer(bootstrap_servers=run.bootstrap, linger_ms=5) as producer:
        pending = []
        while not stop.is_set():
            due = int(rate * (time.monotonic() - started))
            now = datetime.now(UTC)
            for topic, key, value in workload.requests(due - sent, first=sent,
                                                       span=timedelta(milliseconds=1),
                                                       end=now):  # fmt: skip
                pending.append(await producer.send(run.topic(topic), value, key=key))
            sent = due
            if len(pending) > 5000:
                await asyncio.gather(*pending)
                pending = []
            await asyncio.sleep(0.005)
        await asyncio.gather(*pending)
    return sent, time.monotonic() - started


@contextlib.asynccontextmanager
async def watching(run: Run, probes: Probes) -> AsyncIterator[None]:
    """Read the routing and floor topics from their end, noting when each probe's record is
    first seen."""
    consumer = AIOKafkaConsumer(
        run.topic(topics.ROUTING), run.topic(FLOOR_TOPIC), bootstrap_servers=run.bootstrap,
        auto_offset_reset="latest", enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()

    async def read() -> None:
        async for record in consumer:
            seen = time.time()
            if record.topic == run.topic(FLOOR_TOPIC):
                probes.floor.setdefault(record.key.decode(), seen)
                continue
            state = orjson.loads(record.value)
            account = state["account_id"]
            if state["route"] != "subscription":
                probes.blocked.setdefault(account, seen)
                if state["until"]:
                    until = datetime.fromisoformat(state["until"].replace("Z", "+00:00"))
                    probes.resets_at.setdefault(account, until.timestamp())
            elif state["reason"] == "reset":
                probes.restored.setdefault(account, seen)

    task = asyncio.create_task(read())
    try:
        await asyncio.sleep(1)  # the consumer's first fetch positions it at the end
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


def stored_accounts(client: Client, database: str, accounts: list[str]) -> list[str]:
    """Which of ``accounts`` have a row in the ledger."""
    rows = client.query(
        f"SELECT DISTINCT account_id FROM {database}.ledger "
        "WHERE account_id IN {accounts:Array(String)}",
        parameters={"accounts": accounts},
    ).result_rows
    return [str(row[0]) for row in rows]


async def poll_ledger(client: Client, database: str, probes: Probes, stop: asyncio.Event) -> None:
    """Note when each probe's ledger row is first returned by ClickHouse."""
    while not stop.is_set():
        accounts = [a for a in probes.appended if a not in probes.stored]
        if accounts:
            rows = await asyncio.to_thread(stored_accounts, client, database, accounts)
            seen = time.time()
            for account in rows:
                probes.stored.setdefault(account, seen)
        await asyncio.sleep(FRESHNESS_POLL_S)


async def bench(rate: float, probes_wanted: int, interval: float, accounts: int) -> None:
    with broker() as (bootstrap, description), work_dir() as home:
        report.header("latency under load", description)
        run = Run(bootstrap, f"bench-{uuid.uuid4().hex[:8]}-", 4, home,
                  short_window_catalog(home / "catalog.yaml"))  # fmt: skip
        workload = Workload(accounts, datetime.now(UTC), run=uuid.uuid4().hex[:6])
        probe_accounts = Workload(PROBE_BASE + probes_wanted, workload.now)
        await run.create_topics(FLOOR_TOPIC)
        probes = Probes()
        async with sink(run) as (_, client, database), workers(run, 1):
            setup = workload.subscriptions() + [
                probe_accounts.started(PROBE_BASE + n, workload.now - timedelta(days=1))
                for n in range(probes_wanted)
            ]
            await produce(run, setup)

            async def subscribed() -> bool:
                return await end_offsets(run, run.topic(topics.ROUTING)) >= len(setup)

            await wait_until(subscribed, "every subscription applied", timeout_s=300)
            stop, unload = asyncio.Event(), asyncio.Event()
            loaded = asyncio.create_task(background(run, workload, rate, unload))
            polling = asyncio.create_task(poll_ledger(client, database, probes, stop))
            async with (
                watching(run, probes),
                AIOKafkaProducer(bootstrap_servers=run.bootstrap) as producer,
            ):
                await asyncio.sleep(2)  # the background load is running
                for n in range(probes_wanted):
                    topic, key, value = crossing_request(workload, n, datetime.now(UTC))
                    floor = producer.send_and_wait(run.topic(FLOOR_TOPIC), value, key=key)
                    sent = await producer.send_and_wait(run.topic(topic), value, key=key)
                    await floor
                    probes.appended[key.decode()] = sent.timestamp / 1000
                    await asyncio.sleep(interval)
                unload.set()  # the backlog it left, if any, is still load while it drains

                async def settled() -> bool:
                    return all(a in probes.restored and a in probes.stored for a in probes.appended)

                await wait_until(settled, "every probe restored and stored", timeout_s=900)
            stop.set()
            sent_background, elapsed = await loaded
            await polling
        print(f"background: {sent_background:,} requests over {accounts:,} accounts in "
              f"{elapsed:.0f} s ({sent_background / elapsed:,.0f}/s); {probes_wanted} probes, "
              f"one every {interval} s; window {RESET_S} s")  # fmt: skip
        floor = probes.latencies(probes.floor, probes.appended)
        rows = []
        for name, values, goal in (
            ("exhaustion: append → blocked route readable",
             probes.latencies(probes.blocked, probes.appended), "p99 ≤ 250 ms"),
            ("restore: resets_at → restored route readable",
             probes.latencies(probes.restored, probes.resets_at), "p99 ≤ 1 s"),
            ("freshness: append → row in ClickHouse",
             probes.latencies(probes.stored, probes.appended), "p99 ≤ 1 s"),
            ("Kafka floor: append → readable (baseline)", floor, ""),
        ):  # fmt: skip
            p50, p99 = report.quantile(values, 0.5), report.quantile(values, 0.99)
            rows.append((name, len(values), ms(p50), ms(p99), ms(max(values, default=0)),
                         f"{p99 / report.quantile(floor, 0.99):.1f}", goal))  # fmt: skip
        report.table(rows, ["figure", "probes", "p50 ms", "p99 ms", "max ms", "p99 × floor",
                            "goal"])  # fmt: skip


def ms(seconds: float) -> float:
    return seconds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5000.0, help="background requests/s")
    parser.add_argument("--probes", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between probes")
    parser.add_argument("--accounts", type=int, default=2000, help="background accounts")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    args = parser.parse_args()
    stop_on_sigterm()
    if args.smoke:
        args.rate, args.probes, args.interval, args.accounts = 50.0, 3, 0.2, 20
    asyncio.run(bench(args.rate, args.probes, args.interval, args.accounts))


if __name__ == "__main__":
    main()
