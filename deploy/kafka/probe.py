"""Does a broker answer? A metadata request through aiokafka, callable from sync code.

Two steps, cheapest first: a TCP connect (a port nobody listens on fails in microseconds and
logs nothing), then aiokafka's bootstrap, which sends a Metadata request; the broker counts as
up once that response lists at least one broker (a KRaft broker not yet unfenced lists none).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

T = TypeVar("T")


def _port_open(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _first_address(bootstrap_servers: str) -> tuple[str, int]:
    host, _, port = bootstrap_servers.split(",", maxsplit=1)[0].strip().rpartition(":")
    return host.strip("[]") or "localhost", int(port)


async def metadata_answers(bootstrap_servers: str, timeout_s: float = 5.0) -> bool:
    """True when the cluster at ``bootstrap_servers`` returns metadata naming a broker."""
    host, port = _first_address(bootstrap_servers)
    if not await asyncio.to_thread(_port_open, host, port, min(timeout_s, 1.0)):
        return False
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=max(int(timeout_s * 1000), 1000),
        client_id="metering-probe",
    )
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
        return bool(client.cluster.brokers())
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await client.close()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code, even when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="kafka-probe", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def broker_answers(bootstrap_servers: str, timeout_s: float = 5.0) -> bool:
    """Sync form of :func:`metadata_answers`."""
    return run_sync(metadata_answers(bootstrap_servers, timeout_s))
