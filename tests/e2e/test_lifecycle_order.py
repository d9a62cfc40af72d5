"""Lifecycle events published just before the requests they govern, with no pause between
them, on a real broker: the worker charges as the offline replay of the same log does.

The inputs are co-partitioned but are separate topics: Faust hands the agent records of
several partitions in its own interleaving, so a request could be folded before the
``started`` (dead-lettered as an unknown account), ``fallback_configured`` or ``upgraded``
published ahead of it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from schemas import topics
from tests.cluster.conftest import create_topics
from tests.e2e.conftest import collect, publish, running_worker
from tests.e2e.test_worker_matches_replay import canonical, strip
from tests.factories import at, lifecycle, request, started
from tests.unit.billing.conftest import run_scenario

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ACCOUNTS = 6


def log() -> list[dict[str, Any] | bytes]:
    """Per account, in order: started, chats, fallback configured, a 40-image request that
    exhausts the 5-hour window, chats (now pay-as-you-go), an upgrade to Max (the window is
    open again), chats; the accounts interleaved."""
    per_account = []
    for n in range(ACCOUNTS):
        account = f"acct_{n}"
        values: list[dict[str, Any] | bytes] = [started(account, when=at(-60))]
        values += [request(account, start=at(i), request_id=f"{account}-a{i}") for i in range(3)]
        values.append(
            lifecycle("fallback_configured", account, when=at(5), enabled=True,
                      fallback_key_id=f"kp_{n}")
        )  # fmt: skip
        values.append(
            request(account, start=at(6), model="nanobanana/nanobanana-pro", images=40,
                    request_id=f"{account}-img")
        )  # fmt: skip
        values += [request(account, start=at(10 + i), request_id=f"{account}-b{i}")
                   for i in range(10)]  # fmt: skip
        values.append(lifecycle("upgraded", account, when=at(30), plan="max", paid_usd="80"))
        values += [request(account, start=at(31 + i), request_id=f"{account}-c{i}")
                   for i in range(10)]  # fmt: skip
        per_account.append(values)
    return [value for group in zip(*per_account, strict=True) for value in group]


def test_lifecycle_published_just_before_traffic_governs_it(
    worker: Any, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    values = log()
    asyncio.run(publish(kafka_bootstrap, kafka_topic_prefix, values))
    assert_charged_as_replayed(values, kafka_bootstrap, kafka_topic_prefix)


def test_a_backlog_read_at_start_is_charged_in_log_order(
    worker_env: dict[str, str], worker_port: int, kafka_bootstrap: str,
    kafka_topic_prefix: str, tmp_path: Path,
) -> None:  # fmt: skip
    # given the whole log on the broker before any worker runs
    values = log()
    partitions = int(worker_env["METERING_PARTITIONS"])
    asyncio.run(create_topics(kafka_bootstrap, kafka_topic_prefix, partitions))
    asyncio.run(publish(kafka_bootstrap, kafka_topic_prefix, values))
    # when a worker starts and reads it all at once
    with running_worker(worker_env, worker_port, tmp_path / "worker.log"):
        assert_charged_as_replayed(values, kafka_bootstrap, kafka_topic_prefix)


def assert_charged_as_replayed(values: list[Any], bootstrap: str, prefix: str) -> None:
    expected = run_scenario(values)
    assert not expected.dead and {e.funding for e in expected.ledger} >= {"subscription", "payg"}
    ledger = asyncio.run(
        collect(bootstrap, prefix + topics.LEDGER, len(expected.ledger), distinct="entry_id")
    )
    dead = asyncio.run(collect(bootstrap, prefix + topics.DLQ, 1, timeout=2))
    assert [d["code"] for d in dead] == []
    assert funding_of(strip(ledger)) == funding_of(canonical(expected.ledger))
    assert strip(ledger) == canonical(expected.ledger)


def funding_of(entries: list[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    """What each request was charged to: the part a misordering changes first."""
    return {e["request_id"]: (e["funding"], e["fallback_key_id"]) for e in entries}
