"""A gateway's live copy of ``metering.routing``: where to send each account's next request.

The worker writes one ``RoutingState`` per route change to a compacted topic keyed by account,
so reading it from the beginning yields every account's latest route. ``RoutingView`` tails it
with a group-less consumer (every gateway replica sees every partition) and answers
``route(account_id)`` from memory, O(1), without touching Kafka on the request path.

Rules:

- Per account the highest ``seq`` wins; a record with a lower or equal ``seq`` arriving later
  (at-least-once re-delivery by the worker) is ignored and fires no callback.
- ``ready`` becomes True once every partition was read up to the end offsets observed at
  ``start()``; before that a ``None`` from ``route()`` may just mean "not read yet".
- Tombstones and values that are not a ``RoutingState`` are logged and skipped.
- ``on_change`` is awaited inline for every accepted change, the catch-up included (check
  ``ready`` to tell them apart); if it raises, the error is logged and tailing goes on.

Memory: each route is kept as a slotted ``_Route`` (the ``account_id`` is the dict key; route
and reason strings shared), and ``route()`` builds the ``RoutingState`` on demand with
``model_construct`` (≈ 3.4 µs a hit, 0.07 µs a miss, timeit on the dev machine). Measured with
``.venv/bin/python -m bench.routing_view_memory`` (100k accounts, tracemalloc): ≈ 298
bytes/account, 0.94× a plain dict of the raw JSON values (≈ 318), where keeping the decoded
pydantic models would take ≈ 1,360 (4.6× the view); see docs/BENCHMARKS.md.

Not guaranteed: partitions added to the topic after ``start()`` are not read; a route for an
account the worker never routed is ``None`` (the gateway's default applies).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Self, get_args

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from pydantic import ValidationError

from gateway.errors import BrokerUnavailable, RoutingTopicMissing, RoutingViewNotReady
from metering.kafka_security import KafkaSecurity, client_options
from schemas import topics
from schemas.routing import Route, RoutingReason, RoutingState

log = logging.getLogger(__name__)

ChangeCallback = Callable[[RoutingState], Awaitable[None]]

POLL_MS = 500  # longest wait for records per fetch (bounds how long stop() waits)
RETRY_S = 1.0  # pause after a failed fetch, so a broker outage is not a busy loop
DESCRIBE_RETRY_S = 0.1  # a just-created topic may not list its partitions at once

_decode = topics.CONTRACTS[topics.ROUTING].validate_json

_ROUTES: Final[dict[str, Route]] = {route: route for route in get_args(Route)}
_REASONS: Final[dict[str, RoutingReason]] = {reason: reason for reason in get_args(RoutingReason)}
"""One shared string per literal: decoding makes a new one per record otherwise."""


@dataclass(frozen=True, slots=True)
class _Route:
    """One account's latest route without its account id (the dict key holds that)."""

    route: Route
    fallback_key_id: str | None
    until: datetime | None
    reason: RoutingReason
    seq: int
    at: datetime

    @classmethod
    def of(cls, state: RoutingState) -> _Route:
        return cls(
            _ROUTES[state.route],
            state.fallback_key_id,
            state.until,
            _REASONS[state.reason],
            state.seq,
            state.at,
        )

    def state(self, account_id: str) -> RoutingState:
        """The contract model again; fields were validated when the record was decoded."""
        return RoutingState.model_construct(
            schema_version=1,
            account_id=account_id,
            route=self.route,
            fallback_key_id=self.fallback_key_id,
            until=self.until,
            reason=self.reason,
            seq=self.seq,
            at=self.at,
        )


class _Snapshot(Mapping[str, RoutingState]):
    """A frozen copy of the routes; ``RoutingState`` models are built only when read."""

    def __init__(self, routes: dict[str, _Route]) -> None:
        self._routes = routes

    def __getitem__(self, account_id: str) -> RoutingState:
        return self._routes[account_id].state(account_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._routes)

    def __len__(self) -> int:
        return len(self._routes)


class RoutingView:
    """The latest ``RoutingState`` per account, kept current from ``<prefix>metering.routing``.

    ``security``: how to log in (as ``Publisher``'s; default: the ``METERING_KAFKA_*``
    environment, read at ``start()``).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic_prefix: str = "",
        on_change: ChangeCallback | None = None,
        start_timeout_s: float = 30.0,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.topic = topic_prefix + topics.ROUTING
        self._bootstrap_servers = bootstrap_servers
        self._security = security  # None: the METERING_KAFKA_* environment, read at start()
        self._on_change = on_change
        self._start_timeout_s = start_timeout_s
        self._routes: dict[str, _Route] = {}
        self._ready = asyncio.Event()
        self._behind: dict[TopicPartition, int] = {}  # end offset still to reach, per partition
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None

    # -- queries (the request path) --------------------------------------------------------

    def route(self, account_id: str) -> RoutingState | None:
        """The account's latest route, or ``None`` if the topic holds none (yet)."""
        entry = self._routes.get(account_id)
        return None if entry is None else entry.state(account_id)

    def routes(self) -> Mapping[str, RoutingState]:
        """A snapshot of every route (a dict copy; later changes do not show in it)."""
        return _Snapshot(dict(self._routes))

    def __len__(self) -> int:
        return len(self._routes)

    @property
    def ready(self) -> bool:
        """True once the view read the topic up to where it ended when ``start()`` ran."""
        return self._ready.is_set()

    async def wait_ready(self, timeout: float) -> None:
        """Return when ``ready``; raise ``RoutingViewNotReady`` after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            behind = ", ".join(f"{tp.partition}→{end}" for tp, end in sorted(self._behind.items()))
            state = "not started" if self._task is None else f"partitions still behind: {behind}"
            raise RoutingViewNotReady(
                f"{self.topic}: not caught up within {timeout:g} s ({state})"
            ) from None

    # -- the per-record path (the tail loop's body; callable directly) ---------------------

    def apply(self, state: RoutingState) -> bool:
        """Keep ``state`` if its ``seq`` is above the account's current one; True if kept."""
        current = self._routes.get(state.account_id)
        if current is not None and state.seq <= current.seq:
            return False
        self._routes[state.account_id] = _Route.of(state)
        return True

    def ingest(self, value: bytes | None, *, origin: str = "") -> RoutingState | None:
        """Decode one record's value and apply it: the accepted state, or ``None`` if skipped."""
        where = origin or self.topic
        if value is None:
            log.warning("%s: tombstone skipped (the worker never deletes routes)", where)
            return None
        try:
            state: RoutingState = _decode(value)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(part) for part in first["loc"]) or "<value>"
            log.warning("%s: not a RoutingState, skipped: %s: %s", where, field, first["msg"])
            return None
        return state if self.apply(state) else None

    async def receive(self, value: bytes | None, *, origin: str = "") -> bool:
        """``ingest`` one record, then await ``on_change`` if it was accepted; True if so."""
        state = self.ingest(value, origin=origin)
        if state is None:
            return False
        if self._on_change is not None:
            try:
                await self._on_change(state)
            except Exception:
                log.exception(
                    "on_change failed for %s (seq %d); the view keeps tailing",
                    state.account_id,
                    state.seq,
                )
        return True

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the topic from its beginning and keep tailing it in a background task.

        Raises ``RoutingTopicMissing`` if the topic does not exist (it is never auto-created
        here: an auto-created topic would not be compacted) and ``BrokerUnavailable`` if Kafka
        does not answer within ``start_timeout_s``.
        """
        if self._task is not None:
            return
        partitions = await self._partitions()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            client_id="metering-gateway-routing",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **client_options(self._security),
        )
        try:
            async with asyncio.timeout(self._start_timeout_s):
                await consumer.start()
                consumer.assign(partitions)
                await consumer.seek_to_beginning(*partitions)
                ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        except (KafkaError, TimeoutError) as exc:
            await consumer.stop()
            raise BrokerUnavailable(f"{self.topic} at {self._bootstrap_servers}: {exc!r}") from exc
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._ready = asyncio.Event()
        self._behind = dict(ends)
        await self._check_ready(consumer)
        self._task = asyncio.create_task(self._tail(consumer), name=f"routing-view {self.topic}")

    async def stop(self) -> None:
        """Stop tailing and close the consumer; the routes read so far stay answerable."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _partitions(self) -> list[TopicPartition]:
        """The topic's partitions, asked of an admin client (which never auto-creates it)."""
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._bootstrap_servers,
            client_id="metering-gateway-routing",
            **client_options(self._security),
        )
        try:
            async with asyncio.timeout(self._start_timeout_s):
                await admin.start()
                if self.topic not in await admin.list_topics():
                    raise RoutingTopicMissing(
                        f"{self.topic} does not exist at {self._bootstrap_servers}; "
                        "start the worker once (it creates every topic)"
                    )
                while True:
                    described = (await admin.describe_topics([self.topic]))[0]
                    numbers = sorted(p["partition"] for p in described["partitions"])
                    if described["error_code"] == 0 and numbers:
                        return [TopicPartition(self.topic, n) for n in numbers]
                    await asyncio.sleep(DESCRIBE_RETRY_S)
        except (KafkaError, TimeoutError) as exc:
            raise BrokerUnavailable(f"{self.topic} at {self._bootstrap_servers}: {exc!r}") from exc
        finally:
            await admin.close()

    async def _tail(self, consumer: Any) -> None:
        """Fetch, apply, notify, forever; a failure is logged and the loop goes on."""
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=POLL_MS)
                for tp, records in batches.items():
                    for record in records:
                        origin = f"{tp.topic}[{tp.partition}]@{record.offset}"
                        await self.receive(record.value, origin=origin)
                if self._behind:
                    await self._check_ready(consumer)
            except Exception:
                log.exception("%s: tailing failed; retrying in %g s", self.topic, RETRY_S)
                await asyncio.sleep(RETRY_S)  # back off while the broker is unreachable

    async def _check_ready(self, consumer: Any) -> None:
        for tp, end in list(self._behind.items()):
            if await consumer.position(tp) >= end:
                del self._behind[tp]
        if not self._behind:
            self._ready.set()
