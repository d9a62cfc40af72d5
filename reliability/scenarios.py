"""The faults, one scenario each, and the two intensities they run at (fast: CI; full: record).

Every scenario carries the input faults of the load (duplicates, stragglers minutes and days
late, malformed and bad input); the process and infrastructure faults are injected at points
of the run's progress — the count of distinct ledger entries emitted so far — drawn from the
seed, so a run is reproducible in what it does and where (the exact instant a process dies
within a record still depends on the machine).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Final

from reliability.broker import Broker
from reliability.kafka_state import Progress, committed
from reliability.load import LoadShape
from reliability.processes import SinkHost, Worker

PROGRESS_TIMEOUT_S: Final = 900.0
"""How long a scenario waits for the worker to reach its next fault point."""
SINK_NEVER_FLUSHES: Final = ("--batch-ms", "3600000", "--batch-rows", "1000000")
"""Batch options under which the sink flushes only when stopped (the graceful-shutdown proof)."""
SINK_HOLDS_BATCHES: Final = ("--batch-ms", "3000")
"""A 3 s batch window: the sink almost always holds records it has not written yet."""


@dataclass(frozen=True)
class Mode:
    """An intensity: the load and the size of each fault."""

    name: str
    shape: LoadShape
    kills: int
    outage_s: float
    broker_restarts: int


FAST: Final = Mode("fast", LoadShape(), kills=2, outage_s=5.0, broker_restarts=2)
FULL: Final = Mode(
    "full",
    LoadShape(accounts=40, rate=10.0, duration=300.0, bad_per_class=3),
    kills=20,
    outage_s=30.0,
    broker_restarts=4,
)
MODES: Final = {mode.name: mode for mode in (FAST, FULL)}


@dataclass(frozen=True)
class FaultEvent:
    """One injected fault: what, at which progress (distinct entries), and what it showed."""

    action: str
    progress: int
    detail: str = ""


@dataclass
class Chaos:
    """What a scenario acts on, and the record of what it did."""

    worker: Worker
    sink: SinkHost
    broker: Broker
    progress: Progress
    target: int
    """Distinct ledger entries the whole load yields (the offline fold of the load)."""
    seed: int
    sink_group: str
    events: list[FaultEvent] = field(default_factory=list)

    def rng(self, scenario: str) -> random.Random:
        return random.Random(f"{scenario}:{self.seed}")

    async def reach(self, count: int, what: str) -> None:
        await self.progress.reach(max(1, count), PROGRESS_TIMEOUT_S, what)

    async def at_fraction(self, fraction: float, what: str) -> None:
        await self.reach(int(self.target * fraction), what)

    def record(self, action: str, detail: str = "") -> None:
        self.events.append(FaultEvent(action, self.progress.count, detail))


Inject = Callable[[Chaos, Mode], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    inject: Inject
    own_broker: bool = False
    first_sink_options: tuple[str, ...] = ()
    """Options of the sink's first incarnation only (its later ones run with the defaults)."""


async def _nothing(chaos: Chaos, mode: Mode) -> None:
    return None


async def _kill_worker(chaos: Chaos, mode: Mode) -> None:
    """``kill -9`` the worker at ``mode.kills`` seeded points, restarting it after each; a
    point already passed when the new one is ready kills it at once (during its recovery)."""
    rng = chaos.rng("kill-worker")
    points = sorted(rng.randrange(1, max(2, chaos.target)) for _ in range(mode.kills))
    for number, point in enumerate(points, start=1):
        await chaos.reach(point, f"kill {number}")
        started = time.monotonic()
        await chaos.worker.kill()
        chaos.record("kill -9 worker", f"kill {number} at seeded point {point}")
        await chaos.worker.start()
        chaos.record("worker restarted", f"ready {time.monotonic() - started:.1f}s after kill")


async def _restart_broker(chaos: Chaos, mode: Mode) -> None:
    """Restart the broker ``mode.broker_restarts`` times, alternately graceful and hard, at
    evenly spaced points of the run."""
    for number in range(1, mode.broker_restarts + 1):
        await chaos.at_fraction(number / (mode.broker_restarts + 1), f"broker restart {number}")
        hard = number % 2 == 0
        started = time.monotonic()
        chaos.broker.restart(hard=hard)
        kind = "hard (SIGKILL)" if hard else "graceful (SIGTERM)"
        chaos.record(
            f"broker restart, {kind}", f"answering again after {time.monotonic() - started:.1f}s"
        )


async def _clickhouse_outage(chaos: Chaos, mode: Mode) -> None:
    """Every ClickHouse call of the sink fails for ``mode.outage_s`` seconds."""
    await chaos.at_fraction(0.25, "clickhouse outage")
    chaos.sink.signal(signal.SIGUSR2)
    chaos.record("clickhouse outage begins", f"{mode.outage_s:.0f}s of failing queries and inserts")
    await asyncio.sleep(mode.outage_s)  # the outage's own length, not a wait for a condition
    chaos.record("clickhouse outage ends")


async def _sink_rebalance(chaos: Chaos, mode: Mode) -> None:
    """A second consumer joins the sink's group while the first holds an unwritten batch."""
    await chaos.at_fraction(1 / 3, "sink rebalance")
    chaos.sink.signal(signal.SIGUSR1)
    chaos.record("second sink consumer joins", "first consumer batches for 3 s")


async def _graceful_shutdown(chaos: Chaos, mode: Mode) -> None:
    """SIGTERM the worker, then the sink (whose first incarnation flushes only when stopped,
    so it holds every record it read), each mid-load, and start each again."""
    await chaos.at_fraction(1 / 4, "worker SIGTERM")
    code = await chaos.worker.stop()
    chaos.record("SIGTERM worker", f"exit code {code}")
    await chaos.worker.start()
    await chaos.at_fraction(1 / 2, "sink SIGTERM")
    code = await chaos.sink.stop()
    offsets = await committed(chaos.broker.bootstrap, chaos.sink_group)
    chaos.record("SIGTERM sink", f"exit code {code}; committed {sum(offsets.values())} records")
    await chaos.sink.start()


SCENARIOS: Final = {
    s.name: s
    for s in (
        Scenario("input-faults", "duplicates, out-of-order, days-late, bad input only", _nothing),
        Scenario("kill-worker", "kill -9 of the worker at seeded points", _kill_worker),
        Scenario(
            "broker-restarts",
            "graceful and hard restarts of the broker",
            _restart_broker,
            own_broker=True,
        ),
        Scenario("clickhouse-outage", "ClickHouse failing for a while", _clickhouse_outage),
        Scenario(
            "sink-rebalance",
            "a second sink consumer joins while the first holds a batch",
            _sink_rebalance,
            first_sink_options=SINK_HOLDS_BATCHES,
        ),
        Scenario(
            "graceful-shutdown",
            "SIGTERM to sink and worker mid-load, then restart",
            _graceful_shutdown,
            first_sink_options=SINK_NEVER_FLUSHES,
        ),
    )
}


def with_overrides(mode: Mode, **changes: object) -> Mode:
    """``mode`` with the given fields replaced (None values ignored)."""
    return replace(mode, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]
