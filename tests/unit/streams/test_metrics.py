"""The worker's time-dependent metrics: restore delay, input lag, overdue resets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from faust.exceptions import ConsumerNotStarted

from billing.engine import Result
from billing.outputs import Emitted
from schemas import topics
from schemas.quota import QuotaEvent, QuotaEventType, QuotaReason
from streams.metrics import WorkerMetrics, input_lag

RESET = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


def quota(kind: QuotaEventType, reason: QuotaReason) -> Emitted:
    event = QuotaEvent(
        schema_version=1,
        event_id="qe_1",
        account_id="acct_1",
        type=kind,
        window_kind="5h",
        window_id="acct_1/5h/2026-11-02T09:00:00Z",
        opened_at=RESET - timedelta(hours=5),
        resets_at=RESET,
        consumed=Decimal(50),
        cap=Decimal(50),
        unit="flows",
        reason=reason,
        at=RESET,
    )
    return Emitted(topics.QUOTA, "acct_1", event)


def test_a_reset_restore_records_how_late_it_was_emitted() -> None:
    # given a worker whose wall clock reads 2.5 s after the window's reset
    metrics = WorkerMetrics(clock=lambda: RESET.timestamp() + 2.5)
    # when it emits that window's restore, an exhaustion, and a restore by upgrade
    metrics.observe(topics.TICKS, Result([quota("restored", "reset")]))
    metrics.observe(topics.REQUESTS, Result([quota("exhausted", "cap_reached")]))
    metrics.observe(topics.SUBSCRIPTIONS, Result([quota("restored", "upgrade")]))
    # then only the reset's restore is timed, 2.5 s late; every quota event is counted
    sample = metrics.registry.get_sample_value
    assert sample("metering_restore_delay_seconds_count") == 1
    assert sample("metering_restore_delay_seconds_sum") == 2.5
    assert sample("metering_quota_events_total", {"type": "restored"}) == 2


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


class FakeConsumer:
    """What ``input_lag`` reads from Faust's consumer: its assignment and high watermarks."""

    def __init__(self, highwaters: dict[TP, int | None]) -> None:
        self.highwaters = highwaters

    def assignment(self) -> set[TP]:
        return set(self.highwaters)

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters[tp]


def test_input_lag_counts_records_after_the_next_offset_to_apply() -> None:
    # given partitions of two input topics, a changelog, and one partition not fetched yet
    consumer = FakeConsumer(
        {
            TP("gateway.requests", 0): 120,
            TP("gateway.requests", 1): 40,
            TP("metering.ticks", 0): 7,
            TP("worker-accounts-changelog", 0): 999,
            TP("gateway.requests", 2): None,
        }
    )
    positions = {("gateway.requests", 0): 100, ("gateway.requests", 1): 40}
    # when the lag is read against the worker's positions
    lag = input_lag(
        consumer,
        {"gateway.requests", "metering.ticks"},
        lambda topic, partition: positions.get((topic, partition)),
    )
    # then each input partition shows what is left to apply; one never applied counts from 0;
    # changelogs and partitions with no watermark yet are left out
    assert lag == {
        ("gateway.requests", 0): 20,
        ("gateway.requests", 1): 0,
        ("metering.ticks", 0): 7,
    }


class UnstartedConsumer:
    def assignment(self) -> set[TP]:
        raise ConsumerNotStarted("not started")


def test_input_lag_before_the_worker_joined_its_group_is_empty() -> None:
    # a scrape can come before Faust started its consumer: no partitions, not an error
    assert input_lag(UnstartedConsumer(), {"gateway.requests"}, lambda t, p: None) == {}


@pytest.mark.parametrize(
    ("next_deadline", "overdue"),
    [(None, 0.0), (RESET + timedelta(seconds=30), 0.0), (RESET - timedelta(seconds=90), 90.0)],
)
def test_watched_gauges_are_read_at_scrape_time(
    next_deadline: datetime | None, overdue: float
) -> None:
    # given a worker watched with its lag and its earliest unticked deadline
    metrics = WorkerMetrics(clock=RESET.timestamp)
    metrics.watch(lag=lambda: {("gateway.requests", 3): 12}, next_deadline=lambda: next_deadline)
    # when Prometheus scrapes
    sample = metrics.registry.get_sample_value
    # then the gauges hold what the callables say now
    lag = sample("metering_consumer_lag_records", {"topic": "gateway.requests", "partition": "3"})
    assert lag == 12
    assert sample("metering_reset_overdue_seconds") == overdue
