"""A ClickHouse outage injected at the client boundary: the stand-in for a stopped server.

The embedded engine (chDB) runs inside the sink's process and cannot be stopped apart from
it, so the outage is made where the sink meets its store: every ``query`` and ``insert`` of
the wrapped clickhouse-connect client raises ``OperationalError`` while it lasts. The first
``landed`` inserts of an outage do reach the store and raise afterwards — a timeout after
the server wrote the block — so a retry sends a block ClickHouse already holds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from clickhouse_connect.driver.exceptions import OperationalError


class OutageClient:
    """Wraps a clickhouse-connect client; ``begin(seconds)`` starts an outage (thread-safe)."""

    def __init__(
        self, client: Any, landed: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = client
        self.landed = landed
        self.clock = clock
        self.failed_calls = 0
        self.landed_then_failed = 0
        self._until = float("-inf")
        self._queries_from = float("-inf")
        self._landed_left = 0
        self._lock = threading.Lock()

    def begin(self, seconds: float) -> None:
        with self._lock:
            now = self.clock()
            self._until = now + seconds
            self._queries_from = now + seconds / 2
            self._landed_left = self.landed

    @property
    def down(self) -> bool:
        return self.clock() < self._until

    def query(self, *args: Any, **kwargs: Any) -> Any:
        if self.down and self.clock() >= self._queries_from:
            self._fail("query")
        return self.client.query(*args, **kwargs)

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            lands = self.down and self._landed_left > 0
            if lands:
                self._landed_left -= 1
        if lands:
            self.client.insert(*args, **kwargs)
            self.landed_then_failed += 1
            self._fail("insert (the block was written before the error)")
        if self.down:
            self._fail("insert")
        return self.client.insert(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def _fail(self, call: str) -> None:
        with self._lock:
            self.failed_calls += 1
        raise OperationalError(
            f"Error executing HTTP request attempt 1: {call}: [Errno 111] Connection refused "
            "(injected ClickHouse outage)"
        )
