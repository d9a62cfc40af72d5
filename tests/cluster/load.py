"""The load of the cluster tests: the simulator's gateways publishing through the gateway SDK.

Two phases. ``publish_setup()`` sends what the simulator dates at or before the run's start
(subscriptions begun earlier, each Lilac model's first supply state) at once; the test then
waits until every worker shows those supply states, and ``start()`` paces the requests in
real time from there, in a background task, until the run's end or ``stop()``.

Every input partition gets accounts: account ids carry a tag derived from the run's start
(``simulator.seeding.run_tag``), so the partitions they hash to change from run to run, and 30
accounts left one of 6 partitions without any in about one run in 30; a test waiting for every
partition to charge then timed out (the takeover test's CI failure). ``spread_config`` moves
the start back by whole milliseconds until every partition has an account; each account sends
requests from the start (its rate ∝ 1/rank^skew, 0.1 req/s for the last of 30 at 12 req/s).

Why wait between the two: a discount reaches the other workers' ``GlobalTable`` through its
changelog, some time after the worker owning its partition applied it; a request charged by
another worker in between would get the previous multiplier, where the offline replay (which
orders the log by time) applies the new one. Supply states do not change during the run
(``discount_interval`` beyond it) for the same reason: that race is a limit of the live
pipeline (reported), not what these tests are about.

What was published is read back from Kafka afterwards (``metering.replay.kafka_log``), so a
publish cut short by ``stop()`` or by a broker failure cannot make the check wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import takewhile
from types import TracebackType

from billing.catalog import load_catalog
from gateway import Publisher
from metering.replay.kafka_log import account_partition
from schemas.discounts import DiscountChange
from simulator import Delivery, SimulationConfig, Traffic, deliveries
from simulator.pacing import Pacer
from simulator.sinks import KafkaSink
from simulator.stats import SimulationStats

DELIVERY_TIMEOUT_S = 120.0
"""A publish may wait out a leader election or a whole broker restart; it must not fail."""
SPREAD_TRIES = 1000
"""Starts ``spread_config`` tries (1 ms apart); one in 30 misses a partition at 30 over 6."""


@dataclass(frozen=True)
class LoadShape:
    """How much traffic: accounts, requests per second, and for how long at most (seconds)."""

    accounts: int
    rate: float
    duration: float


class GatewayLoad:
    """``async with GatewayLoad(bootstrap, prefix, shape, partitions) as load:`` then
    ``publish_setup()``, ``start()`` and ``stop()``; ``partitions``: the input topics'."""

    def __init__(
        self, bootstrap: str, prefix: str, shape: LoadShape, partitions: int, seed: int = 11
    ) -> None:
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        self.config = spread_config(shape, seed, partitions, now)
        self.stats = SimulationStats()
        self._publisher = Publisher(
            bootstrap, topic_prefix=prefix, delivery_timeout_s=DELIVERY_TIMEOUT_S
        )
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[SimulationStats] | None = None

    async def __aenter__(self) -> GatewayLoad:
        await self._publisher.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.stop()
        finally:
            await self._publisher.stop()

    @property
    def sent(self) -> int:
        return self.stats.sent

    def _run(self) -> Iterator[Delivery]:
        end = self.config.start + timedelta(seconds=self.config.duration)
        return takewhile(lambda d: d.at <= end, deliveries(self.config, load_catalog()))

    async def publish_setup(self) -> dict[str, str]:
        """Publish what is dated at or before the start; the supply state set per model."""
        setup = list(takewhile(lambda d: d.at <= self.config.start, self._run()))
        await KafkaSink(self._publisher, Pacer(self.config.start, 0), stats=self.stats).run(setup)
        changes = [d.value for d in setup if isinstance(d.value, DiscountChange)]
        return {change.model: change.supply_state for change in changes}

    def start(self) -> None:
        """Publish the rest in the background, each no sooner than its instant after now."""
        rest = (d for d in self._run() if d.at > self.config.start)
        traffic = takewhile(lambda d: not self._stopping.is_set(), rest)
        sink = KafkaSink(self._publisher, Pacer(self.config.start, 1.0), stats=self.stats)
        self._task = asyncio.create_task(sink.run(traffic))

    async def stop(self) -> None:
        """End the load after the delivery in progress; raises what the publisher did."""
        self._stopping.set()
        if self._task is not None:
            await self._task


def spread_config(shape: LoadShape, seed: int, partitions: int, now: datetime) -> SimulationConfig:
    """The run starting at ``now``, or the latest millisecond before it at which the run's
    accounts hash to every one of ``partitions`` (module docstring)."""
    if shape.accounts < partitions:
        raise ValueError(f"{shape.accounts} accounts cannot cover {partitions} partitions")
    catalog = load_catalog()
    for back in range(SPREAD_TRIES):
        config = SimulationConfig(
            seed=seed,
            accounts=shape.accounts,
            rate=shape.rate,
            duration=shape.duration,
            start=now - timedelta(milliseconds=back),
            duplicate_rate=0.02,  # gateways retry: the same request_id, charged once
            discount_interval=1e9,  # no supply change during the run (see the docstring)
            plan_limits=False,  # the rate is the load; RPM limits would thin it
        )
        accounts = Traffic(config, catalog).accounts
        if len({account_partition(a.account_id, partitions) for a in accounts}) == partitions:
            return config
    raise ValueError(f"no start in {SPREAD_TRIES} ms puts accounts on all {partitions} partitions")
