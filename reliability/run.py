"""One harness run: the load through a real worker and a real sink, a scenario's faults, the
invariants checked. Steps, in order:

1. Build the load (``reliability.load``) and the catalog (the demo's: minute-long windows,
   caps ×0.1, so windows run out and reset within a run); fold the load offline once to know
   how many ledger entries it yields (the scenario's fault points are fractions of it).
2. Take the broker (given, or the harness's own when the scenario restarts it); create this
   run's topics under a fresh prefix.
3. Start the worker (``metering worker``, RocksDB tables) and the sink host; a supervisor
   restarts whichever exits without being asked (and the verdict lists it).
4. Publish the lifecycle and discount events; wait until the worker committed them all.
5. Publish the traffic at once (the worker works through it as a backlog) and run the
   scenario's faults against the worker's progress.
6. Drain: until the worker committed every input record and the sink every ledger record.
7. Read the input topics back and fold them offline (``metering replay``'s core); wait until
   every account's last route agrees with the replayed state (live ticks lag by a moment).
8. Stop the worker and the sink (SIGTERM); the sink writes what ClickHouse holds.
9. Read the DLQ, the routing topic and the worker's account table (its changelog); check
   every invariant (``reliability.invariants``) into a ``Verdict``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from billing.account import AccountState
from billing.catalog import load_catalog
from billing.catalog.model import Catalog
from billing.engine import Engine
from billing.replay import Replay
from billing.source import Source
from metering.demo.catalog import write_demo_catalog
from metering.errors import ConsistencyError, ServiceUnavailable
from metering.replay.kafka_log import read_inputs
from metering.replay.logfile import LogRecord
from metering.settings import load_settings
from metering.topic_reader import read_topic
from reliability import invariants
from reliability.bad_input import BadInput
from reliability.broker import Broker
from reliability.kafka_state import Progress, caught_up
from reliability.load import Load, Record, build_load
from reliability.processes import SinkHost, Worker, supervise
from reliability.scenarios import Chaos, Mode, Scenario
from reliability.verdict import Verdict
from schemas import topics
from schemas.dlq import DeadLetter
from schemas.ledger import LedgerEntry
from schemas.routing import RoutingState
from simulator.sinks import kafka_publisher
from streams.admin import ensure_topics
from streams.codecs import account_from_body

log = logging.getLogger(__name__)

APP_ID: Final = "chaos"
DATABASE: Final = "chaos"
PARTITIONS: Final = 4
DRAIN_TIMEOUT_S: Final = 900.0
ROUTES_TIMEOUT_S: Final = 60.0
POLL_S: Final = 0.5
WORKER_ENV: Final = {
    # Faust reads these: a killed member is dropped from the group after 8 s instead of 60,
    # which only shortens the wait after each kill -9; delivery semantics are unchanged.
    "BROKER_SESSION_TIMEOUT": "8",
    "BROKER_HEARTBEAT_INTERVAL": "1",
}
INPUTS: Final = (topics.REQUESTS, topics.SUBSCRIPTIONS, topics.ADJUSTMENTS, topics.DISCOUNTS)
EVIDENCE: Final = {
    "sink revoked unwritten records": b"uncommitted records left to their new owner",
    "sink retried ClickHouse": b"retrying in",
    "sink flushed on stop": b"sink stopping: flushing",
    "worker re-read skipped records": b"the consumer skipped offsets",
}
"""Log lines that show a fault landed (searched in every incarnation's log)."""


@dataclass(frozen=True)
class RunConfig:
    scenario: Scenario
    mode: Mode
    work_dir: Path
    bootstrap: str | None = None
    """A broker to use; None: the harness starts its own (always, for broker restarts)."""
    clickhouse_url: str | None = None
    """The ledger store; None: an embedded chDB store in ``work_dir``, owned by the sink."""


async def run(config: RunConfig) -> Verdict:
    """Steps 1-9 of the module docstring."""
    began = time.monotonic()
    work = config.work_dir
    work.mkdir(parents=True, exist_ok=True)
    # Step 1.
    catalog_path = write_demo_catalog(work / "catalog.yaml")
    catalog = load_catalog(catalog_path)
    now = datetime.now(UTC)
    load = build_load(config.mode.shape, catalog, now)
    target = offline_entries(load, catalog, now)
    # Step 2.
    prefix = f"chaos-{config.scenario.name}-{uuid.uuid4().hex[:8]}-"
    own = config.scenario.own_broker or config.bootstrap is None
    broker = Broker.started(work / "kafka") if own else Broker.given(str(config.bootstrap))
    try:
        settings = load_settings().model_copy(
            update={"topic_prefix": prefix, "partitions": PARTITIONS}
        )
        await ensure_topics(settings, broker.bootstrap)
        return await _live(config, broker, prefix, load, target, catalog, catalog_path, began)
    finally:
        broker.stop()


async def _live(
    config: RunConfig,
    broker: Broker,
    prefix: str,
    load: Load,
    target: int,
    catalog: Catalog,
    catalog_path: Path,
    began: float,
) -> Verdict:
    work, bootstrap = config.work_dir, broker.bootstrap
    base_env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "METERING_TOPIC_PREFIX": prefix,
        "METERING_HOME": str(work),
        "METERING_PARTITIONS": str(PARTITIONS),
        "METERING_CATALOG": str(catalog_path),
    }
    url = config.clickhouse_url or f"chdb://{work / 'chdb'}"
    database = DATABASE if config.clickhouse_url is None else f"chaos_{prefix[-9:-1]}"
    # Step 3.
    worker = Worker({**base_env, **WORKER_ENV}, work)
    sink = SinkHost(
        {**base_env, "CLICKHOUSE_URL": url},
        work,
        dump=work / "ledger.json",
        options=["--database", database, "--outage-s", str(config.mode.outage_s)],
    )
    async with contextlib.AsyncExitStack() as cleanup:
        cleanup.push_async_callback(worker.close)
        cleanup.push_async_callback(sink.close)
        started = await asyncio.gather(
            worker.start(), sink.start(*config.scenario.first_sink_options), return_exceptions=True
        )
        for failure in started:
            if isinstance(failure, BaseException):
                raise failure
        progress = Progress.of(bootstrap, prefix + topics.LEDGER)
        sink_group = f"{prefix}{topics.LEDGER}-sink"
        chaos = Chaos(worker, sink, broker, progress, target, config.mode.shape.seed, sink_group)
        async with _background(progress.follow(), supervise(worker, sink)):
            # Step 4.
            log.info("worker and sink ready; publishing %d lifecycle records", len(load.setup))
            await _publish(bootstrap, prefix, load.setup)
            group = prefix + APP_ID
            setup_topics = [prefix + topics.SUBSCRIPTIONS, prefix + topics.DISCOUNTS]
            await _until(lambda: caught_up(bootstrap, group, setup_topics), "lifecycle applied")
            # Step 5.
            log.info(
                "publishing %d traffic records; faults: %s", len(load.traffic), config.scenario.name
            )
            await _publish(bootstrap, prefix, load.traffic)
            await config.scenario.inject(chaos, config.mode)
            # Step 6.
            log.info("faults done at %d of %d entries; draining", progress.count, target)
            inputs = [prefix + name for name in INPUTS]
            await _until(lambda: caught_up(bootstrap, group, inputs), "worker drained")
            ledger_topic = [prefix + topics.LEDGER]
            await _until(lambda: caught_up(bootstrap, sink_group, ledger_topic), "sink drained")
            # Step 7.
            log.info("drained; replaying the inputs read back from Kafka")
            records = await read_inputs(bootstrap, prefix)
            expected = fold(records, catalog)
            routes_checked, route_mismatches = await _routes_settle(bootstrap, prefix, expected)
        # Step 8.
        worker_code = await worker.stop()
        await sink.stop()
        log.info("worker stopped with %s; sink with %s", worker_code, sink.codes[-1])
    # Step 9.
    dump = config.work_dir / "ledger.json"
    if not dump.exists():
        raise ConsistencyError(
            f"the sink exited with {sink.codes[-1]} without writing what ClickHouse holds; "
            f"its log: {sink.log_path}"
        )
    stored = orjson.loads(dump.read_bytes())
    entries = [LedgerEntry.model_validate_json(orjson.dumps(e)) for e in stored["entries"]]
    letters = [
        DeadLetter.model_validate_json(r.value or b"")
        for r in await read_topic(bootstrap, prefix + topics.DLQ)
    ]
    states = await worker_states(bootstrap, f"{prefix}{APP_ID}-accounts-changelog")
    windows_checked, window_mismatches = invariants.check_windows(states, expected.states, entries)
    return Verdict(
        scenario=config.scenario.name,
        mode=config.mode.name,
        seed=config.mode.shape.seed,
        prefix=prefix,
        load=load.counts(),
        faults=chaos.events,
        ledger=invariants.check_ledger(entries, expected.ledger, int(stored["raw_rows"])),
        windows_checked=windows_checked,
        window_mismatches=window_mismatches,
        dead_letters=invariants.check_dead_letters(letters, expected.dead_letters, injected(load)),
        routes_checked=routes_checked,
        route_mismatches=route_mismatches,
        unexpected_exits=[*worker.unexpected, *sink.unexpected],
        worker_start_hangs=worker.hangs,
        sink_exit_codes=sink.codes,
        sink={"consumers": stored["consumers"], "outage": stored["outage"]},
        ledger_records=progress.records,
        seconds=round(time.monotonic() - began, 1),
        evidence=evidence(work),
    )


def offline_entries(load: Load, catalog: Catalog, now: datetime) -> int:
    """Distinct ledger entries the load yields, folded in publication order."""
    records = [
        LogRecord(Source(r.topic, 0, offset, now), r.value, r.key)
        for offset, r in enumerate([*load.setup, *load.traffic])
    ]
    return len({e.entry_id for e in fold(records, catalog).ledger})


@dataclass(frozen=True)
class Folded:
    """The offline fold of a log: its ledger, its dead letters, every account's final state."""

    ledger: list[LedgerEntry]
    dead_letters: list[DeadLetter]
    states: dict[str, AccountState]


def fold(records: Sequence[LogRecord], catalog: Catalog) -> Folded:
    accounts: dict[str, AccountState] = {}
    engine = Engine(catalog, accounts=accounts, seen={}, discounts={})
    emitted = list(Replay(engine).run((r.source, r.payload, r.key) for r in records))
    return Folded(
        ledger=[e.value for e in emitted if isinstance(e.value, LedgerEntry)],
        dead_letters=[e.value for e in emitted if isinstance(e.value, DeadLetter)],
        states=accounts,
    )


def injected(load: Load) -> dict[str, list[BadInput]]:
    """Every invalid record the load carries, by class (the simulator's malformed ones too)."""
    classes: dict[str, list[BadInput]] = defaultdict(list)
    for bad in load.bad:
        classes[bad.kind].append(bad)
    for payload in load.malformed:
        classes["malformed (simulator)"].append(
            BadInput("malformed (simulator)", topics.REQUESTS, "", payload)
        )
    return dict(classes)


async def worker_states(bootstrap: str, changelog: str) -> dict[str, AccountState]:
    """The worker's account table as its changelog ends (last value per key; a tombstone
    deletes). The value is ``streams.stores.AccountTable``'s envelope: state and offsets."""
    latest: dict[bytes, bytes | None] = {}
    for record in await read_topic(bootstrap, changelog):
        latest[record.key or b""] = record.value  # keys are Faust-serialised: keyed by bytes
    states = [account_from_body(orjson.loads(v)["state"]) for v in latest.values() if v]
    return {state.account_id: state for state in states}


async def _routes_settle(
    bootstrap: str, prefix: str, expected: Folded
) -> tuple[int, dict[str, tuple[Any, Any]]]:
    """Until every account's last route equals the replayed state's route now (a reset falls
    due at any moment; the worker's tick follows it within a fraction of a second)."""
    deadline = time.monotonic() + ROUTES_TIMEOUT_S
    while True:
        records = await read_topic(bootstrap, prefix + topics.ROUTING)
        routes = [RoutingState.model_validate_json(r.value or b"") for r in records]
        wrong = invariants.check_routes(routes, expected.states, datetime.now(UTC))
        if not wrong or time.monotonic() > deadline:
            return len(expected.states), wrong
        await asyncio.sleep(POLL_S)


async def _publish(bootstrap: str, prefix: str, records: list[Record]) -> None:
    async with kafka_publisher(bootstrap, prefix) as publisher:
        for record in records:
            await publisher.publish_raw(record.topic, record.key.encode(), record.value)


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds twice in a row (a commit can trail by a second)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    held = 0
    while held < 2:
        held = held + 1 if await check() else 0
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"{what}: not reached within {DRAIN_TIMEOUT_S:.0f}s")
        await asyncio.sleep(POLL_S)


@contextlib.asynccontextmanager
async def _background(*jobs: Awaitable[None]) -> AsyncIterator[None]:
    """Run ``jobs`` while the block runs; cancel them at its end. A job that fails (the
    supervisor could not restart a process) cancels the block and its error is raised."""
    block = asyncio.current_task()
    tasks = [asyncio.ensure_future(job) for job in jobs]

    def failed(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and block is not None:
            block.cancel()

    for task in tasks:
        task.add_done_callback(failed)
    try:
        yield
    finally:
        for task in tasks:
            task.remove_done_callback(failed)
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                raise result


def evidence(work: Path) -> dict[str, str]:
    """The first line of each kind of ``EVIDENCE`` in the logs of every incarnation."""
    found: dict[str, str] = {}
    for path in sorted(work.glob("*.log")):
        for line in path.read_bytes().splitlines():
            for name, marker in EVIDENCE.items():
                if name not in found and marker in line:
                    found[name] = f"{path.name}: {line.decode(errors='replace').strip()[:240]}"
    return found
