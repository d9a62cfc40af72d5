"""What the pipeline is doing, read from its output topics: the demo's live view and chart data.

A group-less consumer tails ``metering.ledger``, ``.quota``, ``.routing`` and ``.dlq`` from
the beginning; it never commits and never affects the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from metering.kafka_security import client_options
from schemas import topics
from schemas.quota import QuotaEvent
from schemas.routing import RoutingState

log = logging.getLogger(__name__)


@dataclass
class PipelineView:
    ledger_ids: set[str] = field(default_factory=set)
    quota_events: list[QuotaEvent] = field(default_factory=list)
    routes: dict[str, RoutingState] = field(default_factory=dict)
    route_changes: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)

    @property
    def exhaustions(self) -> int:
        return len({e.event_id for e in self.quota_events if e.type == "exhausted"})

    @property
    def restores(self) -> int:
        return len({e.event_id for e in self.quota_events if e.type == "restored"})

    def routes_by_kind(self) -> Counter[str]:
        return Counter(state.route for state in self.routes.values())


class Monitor:
    """``async with Monitor(bootstrap, prefix) as m: m.view``: updated as records arrive."""

    def __init__(self, bootstrap_servers: str, prefix: str) -> None:
        self.prefix = prefix
        self.view = PipelineView()
        self._consumer = AIOKafkaConsumer(
            *(prefix + name for name in topics.OUTPUT_TOPICS),
            bootstrap_servers=bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **client_options(),  # METERING_KAFKA_* of this process
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Monitor:
        await self._consumer.start()
        self._task = asyncio.create_task(self._tail())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _tail(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    try:
                        self._apply(record.topic[len(self.prefix) :], record.value or b"")
                    except (ValidationError, ValueError) as exc:
                        log.warning("monitor: unreadable record on %s: %s", record.topic, exc)

    def _apply(self, topic: str, value: bytes) -> None:
        view = self.view
        if topic == topics.LEDGER:
            entry_id = topics.CONTRACTS[topic].validate_json(value).entry_id
            view.ledger_ids.add(entry_id)
        elif topic == topics.QUOTA:
            view.quota_events.append(QuotaEvent.model_validate_json(value))
        elif topic == topics.ROUTING:
            state = RoutingState.model_validate_json(value)
            known = view.routes.get(state.account_id)
            if known is None or state.seq > known.seq:
                view.routes[state.account_id] = state
                view.route_changes += 1
        elif topic == topics.DLQ:
            view.dead_letters[topics.CONTRACTS[topic].validate_json(value).code] += 1
