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

from metering.kafka_security import KafkaSecurity, client_options

T = TypeVar("T")

TLS_CLOSE_GRACE_S = 0.05


def _port_open(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _addresses(bootstrap_servers: str) -> list[tuple[str, int]]:
    addresses = []
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        addresses.append((host.strip("[]") or "localhost", int(port)))
    return addresses


async def metadata_answers(
    bootstrap_servers: str, timeout_s: float = 5.0, security: KafkaSecurity | None = None
) -> bool:
    """True when the cluster at ``bootstrap_servers`` returns metadata naming a broker."""
    return bool(await broker_ids(bootstrap_servers, timeout_s, security))


async def broker_ids(
    bootstrap_servers: str, timeout_s: float = 5.0, security: KafkaSecurity | None = None
) -> set[int]:
    """The node ids a metadata response names: the registered, unfenced brokers.

    Only the listed servers whose port accepts a connection are asked (any one may answer: a
    cluster with a node down still does); none → empty, without a word from aiokafka.
    """
    connect_s = min(timeout_s, 1.0)
    reachable = [
        f"{host}:{port}"
        for host, port in _addresses(bootstrap_servers)
        if await asyncio.to_thread(_port_open, host, port, connect_s)
    ]
    if not reachable:
        return set()
    options = client_options(security)
    client = AIOKafkaClient(
        bootstrap_servers=",".join(reachable),
        request_timeout_ms=max(int(timeout_s * 1000), 1000),
        client_id="metering-probe",
        **options,
    )
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
        return {broker.nodeId for broker in client.cluster.brokers()}
    except (KafkaError, OSError, TimeoutError):
        return set()
    finally:
        await client.close()
        if options.get("ssl_context") is not None:
            # aiokafka closes a TLS connection without awaiting the close_notify exchange; give
            # it a moment, or run_sync's loop ends first and leaves the socket to the GC.
            await asyncio.sleep(TLS_CLOSE_GRACE_S)


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


def broker_answers(
    bootstrap_servers: str, timeout_s: float = 5.0, security: KafkaSecurity | None = None
) -> bool:
    """Sync form of :func:`metadata_answers`."""
    return run_sync(metadata_answers(bootstrap_servers, timeout_s, security))
