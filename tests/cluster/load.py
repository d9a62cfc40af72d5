"""The load of the cluster tests: the simulator's gateways publishing through the gateway SDK.

Two phases. ``publish_setup()`` sends what the simulator dates at or before the run's start
(subscriptions begun earlier, each Lilac model's first supply state) at once; the test then
waits until every worker shows those supply states, and ``start()`` paces the requests in
real time from there, in a background task, until the run's end or ``stop()``.

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
from schemas.discounts import DiscountChange
from simulator import Delivery, SimulationConfig, deliveries
from simulator.pacing import Pacer
from simulator.sinks import KafkaSink
from simulator.stats import SimulationStats

DELIVERY_TIMEOUT_S = 120.0
"""A publish may wait out a leader election or a whole broker restart; it must not fail."""


@dataclass(frozen=True)
class LoadShape:
    """How much traffic: accounts, requests per second, and for how long at most (seconds)."""

    accounts: int
    rate: float
    duration: float


class GatewayLoad:
    """``async with GatewayLoad(bootstrap, prefix, shape) as load:`` then ``publish_setup()``,
    ``start()`` and ``stop()``."""

    def __init__(self, bootstrap: str, prefix: str, shape: LoadShape, seed: int = 11) -> None:
        now = datetime.now(UTC)
        self.config = SimulationConfig(
            seed=seed,
            accounts=shape.accounts,
            rate=shape.rate,
            duration=shape.duration,
            start=now.replace(microsecond=now.microsecond // 1000 * 1000),
            duplicate_rate=0.02,  # gateways retry: the same request_id, charged once
            discount_interval=1e9,  # no supply change during the run (see the docstring)
            plan_limits=False,  # the rate is the load; RPM limits would thin it
        )
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
