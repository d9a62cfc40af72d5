"""The sink against a real broker and the real ClickHouse engine: what the topic holds is stored
once, whatever was re-delivered or retried, and offsets move only after the rows are stored."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from clickhouse_connect.driver.client import Client

from metering.sink.consumer import SinkConfig, kafka_consumer
from metering.sink.writer import ClickHouseLedgerStore
from metering.warehouse import migrate
from schemas import topics
from schemas.ledger import LedgerEntry
from tests.integration.ledger_pipeline import (
    PARTITIONS,
    GroupOffsets,
    billed_ledger,
    create_topic,
    entry_records,
    publish,
    running_sink,
    total,
    wait_until,
)

pytestmark = pytest.mark.integration

MONEY = ("list_cost_usd", "charge_usd", "flows", "debit", "overshoot")


@pytest.fixture
def ledger_db(clickhouse_client: Client, clickhouse_database: str) -> str:
    migrate(clickhouse_client, database=clickhouse_database)
    return clickhouse_database


@pytest.fixture
async def ledger_topic(kafka_bootstrap: str, kafka_topic_prefix: str) -> str:
    topic = f"{kafka_topic_prefix}{topics.LEDGER}"
    await create_topic(kafka_bootstrap, topic)
    return topic


def group_of(prefix: str) -> str:
    return SinkConfig.for_prefix(prefix).group_id


def scalar(client: Client, sql: str) -> Any:
    return client.query(sql).result_rows[0][0]


def per_account_totals(client: Client, database: str) -> dict[str, dict[str, Any]]:
    sums = ", ".join(f"sum({m})" for m in MONEY)
    rows = client.query(
        f"SELECT account_id, count(), {sums} FROM {database}.ledger FINAL GROUP BY account_id"
    ).result_rows
    return {row[0]: dict(zip(("entries", *MONEY), row[1:], strict=True)) for row in rows}


def expected_totals(entries: Sequence[LedgerEntry]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for account in {e.account_id for e in entries}:
        mine = [e for e in entries if e.account_id == account]
        out[account] = {"entries": len(mine), **{m: total(mine, m) for m in MONEY}}
    return out


class CommitDropped:
    """A consumer that loses every commit: the sink 'crashes' after insert, before commit."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.dropped = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def commit(self, offsets: Any) -> None:
        self.dropped += 1


class Unavailable:
    """The real store, refusing every call while ``down`` (ClickHouse unreachable)."""

    def __init__(self, inner: ClickHouseLedgerStore) -> None:
        self.inner = inner
        self.down = True

    def _check(self) -> None:
        if self.down:
            raise ConnectionRefusedError(111, "Connection refused")

    def stored_entry_ids(self, entries: Sequence[LedgerEntry]) -> set[str]:
        self._check()
        return self.inner.stored_entry_ids(entries)

    def insert(self, entries: Sequence[LedgerEntry], token: str) -> None:
        self._check()
        self.inner.insert(entries, token)


async def test_the_sink_stores_what_the_topic_holds_and_skips_poison(
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    ledger_topic: str,
    clickhouse_client: Client,
    ledger_db: str,
) -> None:
    # given the scenario's ledger entries on the topic, and one value that is no entry
    entries = billed_ledger()
    await publish(kafka_bootstrap, ledger_topic, entry_records(entries))
    await publish(kafka_bootstrap, ledger_topic, [("acct_x", b'{"not": "an entry"}')])
    # when the sink runs until its group has committed the end of every partition
    async with (
        GroupOffsets(kafka_bootstrap, ledger_topic, group_of(kafka_topic_prefix)) as offsets,
        running_sink(kafka_bootstrap, kafka_topic_prefix, clickhouse_client, ledger_db) as sink,
    ):
        await wait_until(offsets.caught_up, "the sink to commit the whole topic")
    # then ClickHouse holds each entry once, with exactly the ledger's amounts per account
    assert scalar(clickhouse_client, f"SELECT count() FROM {ledger_db}.ledger") == len(entries)
    assert per_account_totals(clickhouse_client, ledger_db) == expected_totals(entries)
    stored = clickhouse_client.query(
        f"SELECT entry_id, charge_usd, started_at, late FROM {ledger_db}.ledger FINAL"
    ).result_rows
    by_id = {e.entry_id: e for e in entries}
    for entry_id, charge, started_at, late in stored:
        assert charge == by_id[entry_id].charge_usd
        assert started_at.replace(tzinfo=None) == by_id[entry_id].started_at.replace(tzinfo=None)
        assert late is by_id[entry_id].late
    # and read back, every entry is the one the billing core emitted, field for field
    read_back = ClickHouseLedgerStore(clickhouse_client, ledger_db).entries()
    assert read_back == sorted(entries, key=lambda e: (e.account_id, e.started_at, e.entry_id))
    # and the poison value was counted and skipped, not fatal
    assert sink.metrics.value("poison_records_total") == 1
    assert sink.metrics.value("rows_inserted_total") == len(entries)
    for partition in range(PARTITIONS):
        lag = sink.metrics.value("lag_records", topic=ledger_topic, partition=str(partition))
        assert lag == 0


async def test_a_restart_before_commit_leaves_each_entry_once(
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    ledger_topic: str,
    clickhouse_client: Client,
    ledger_db: str,
) -> None:
    # given a sink that inserts everything and then loses its commits (killed before commit)
    entries = billed_ledger()
    await publish(kafka_bootstrap, ledger_topic, entry_records(entries))
    config = SinkConfig.for_prefix(kafka_topic_prefix)
    crashing = CommitDropped(kafka_consumer(kafka_bootstrap, config))
    async with (
        GroupOffsets(kafka_bootstrap, ledger_topic, config.group_id) as offsets,
    ):
        async with running_sink(
            kafka_bootstrap, kafka_topic_prefix, clickhouse_client, ledger_db, consumer=crashing
        ) as first:

            async def all_inserted() -> bool:
                return first.metrics.value("rows_inserted_total") == len(entries)

            await wait_until(all_inserted, "the first sink to insert every entry")
        assert crashing.dropped > 0
        assert await offsets.committed() == {}

        # when a new sink of the same group starts: it re-reads the whole topic
        async with running_sink(
            kafka_bootstrap, kafka_topic_prefix, clickhouse_client, ledger_db
        ) as second:
            await wait_until(offsets.caught_up, "the restarted sink to commit the topic")

    # then nothing was inserted twice, not even before a merge, and the rollups agree
    assert second.metrics.value("rows_inserted_total") == 0
    assert second.metrics.value("duplicates_skipped_total") == len(entries)
    assert scalar(clickhouse_client, f"SELECT count() FROM {ledger_db}.ledger") == len(entries)
    assert per_account_totals(clickhouse_client, ledger_db) == expected_totals(entries)
    rollup = scalar(clickhouse_client, f"SELECT sum(charge_usd) FROM {ledger_db}.cost_daily")
    assert rollup == total(entries, "charge_usd")
    hourly = scalar(clickhouse_client, f"SELECT sum(requests) FROM {ledger_db}.usage_hourly")
    assert hourly == sum(1 for e in entries if e.kind == "charge")


async def test_a_worker_re_emission_is_stored_once(
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    ledger_topic: str,
    clickhouse_client: Client,
    ledger_db: str,
) -> None:
    # given entries on the topic, then the same entries again (an at-least-once worker
    # re-emitting after a crash: identical entries at new offsets)
    entries = billed_ledger()[:60]
    await publish(kafka_bootstrap, ledger_topic, entry_records(entries))
    async with (
        GroupOffsets(kafka_bootstrap, ledger_topic, group_of(kafka_topic_prefix)) as offsets,
        running_sink(kafka_bootstrap, kafka_topic_prefix, clickhouse_client, ledger_db) as sink,
    ):
        await wait_until(offsets.caught_up, "the first copies to be committed")
        await publish(kafka_bootstrap, ledger_topic, entry_records(entries))
        await wait_until(offsets.caught_up, "the second copies to be committed")
    # then each entry is stored once and counted once by the rollups
    assert scalar(clickhouse_client, f"SELECT count() FROM {ledger_db}.ledger") == len(entries)
    assert sink.metrics.value("duplicates_skipped_total") == len(entries)
    rollup = scalar(clickhouse_client, f"SELECT sum(list_cost_usd) FROM {ledger_db}.cost_daily")
    assert rollup == total(entries, "list_cost_usd")


async def test_while_clickhouse_is_down_nothing_is_committed_and_nothing_dropped(
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    ledger_topic: str,
    clickhouse_client: Client,
    ledger_db: str,
) -> None:
    # given a store that refuses every call
    entries = billed_ledger()
    await publish(kafka_bootstrap, ledger_topic, entry_records(entries))
    config = SinkConfig.for_prefix(kafka_topic_prefix)
    async with (
        GroupOffsets(kafka_bootstrap, ledger_topic, config.group_id) as offsets,
        running_sink(kafka_bootstrap, kafka_topic_prefix, clickhouse_client, ledger_db) as sink,
    ):
        store = Unavailable(ClickHouseLedgerStore(clickhouse_client, ledger_db))
        sink.writer.store = store

        async def retried_a_few_times() -> bool:
            return sink.metrics.value("retries_total") >= 4

        # when the sink has retried with backoff a few times
        await wait_until(retried_a_few_times, "the sink to retry the unavailable store")
        # then it has committed nothing and is still running
        assert await offsets.committed() == {}
        assert sink.metrics.value("batches_total") == 0
        # when ClickHouse comes back, the same batches land and are committed
        store.down = False
        await wait_until(offsets.caught_up, "the sink to catch up after the outage")
    assert scalar(clickhouse_client, f"SELECT count() FROM {ledger_db}.ledger") == len(entries)
    assert per_account_totals(clickhouse_client, ledger_db) == expected_totals(entries)


def synthetic(count: int, accounts: int = 500) -> list[LedgerEntry]:
    """``count`` distinct entries shaped like the scenario's (for volume, not for billing)."""
    templates = billed_ledger()
    base = templates[0].started_at
    out = []
    for n in range(count):
        template = templates[n % len(templates)]
        started = base + timedelta(milliseconds=n * 37)
        out.append(
            template.model_copy(
                update={
                    "entry_id": f"le_load_{n:08d}",
                    "request_id": f"req_load_{n}",
                    "account_id": f"acct_load_{n % accounts}",
                    "started_at": started,
                    "completed_at": started + timedelta(seconds=3),
                }
            )
        )
    return out


async def test_throughput_and_lag(
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    ledger_topic: str,
    clickhouse_client: Client,
    ledger_db: str,
) -> None:
    # given a backlog of 20,000 entries
    backlog = synthetic(20_000)
    await publish(kafka_bootstrap, ledger_topic, entry_records(backlog))
    live = synthetic(25_000)[20_000:]
    async with (
        GroupOffsets(kafka_bootstrap, ledger_topic, group_of(kafka_topic_prefix)) as offsets,
        running_sink(kafka_bootstrap, kafka_topic_prefix, clickhouse_client, ledger_db) as sink,
    ):
        # when the sink drains it
        drained_s = await wait_until(offsets.caught_up, "the backlog to be committed", 300)
        insert_s = sink.metrics.value("insert_seconds_sum")
        batches = sink.metrics.value("batches_total")
        # and then follows live traffic: 5,000 entries at about 2,500 rows/s
        delay_sum = sink.metrics.value("delay_seconds_sum")
        delay_count = sink.metrics.value("delay_seconds_count")
        live_s = await publish_paced(kafka_bootstrap, ledger_topic, entry_records(live))
        await wait_until(offsets.caught_up, "the live traffic to be committed", 120)
        live_batches = sink.metrics.value("delay_seconds_count") - delay_count
        live_delay = (sink.metrics.value("delay_seconds_sum") - delay_sum) / live_batches
    # then every entry is stored once, at a rate worth reporting
    assert scalar(clickhouse_client, f"SELECT count() FROM {ledger_db}.ledger") == 25_000
    print(
        f"\nsink throughput: {len(backlog)} rows drained in {drained_s:.2f} s "
        f"= {len(backlog) / drained_s:,.0f} rows/s end to end; inserts alone "
        f"{len(backlog) / insert_s:,.0f} rows/s over {batches:.0f} batches; live: {len(live)} rows "
        f"produced over {live_s:.2f} s, {live_batches:.0f} batches, mean delay from a batch's "
        f"oldest Kafka timestamp to its commit {live_delay * 1000:.0f} ms"
    )
    assert len(backlog) / drained_s > 1_000
    assert live_delay < 5.0


async def publish_paced(
    bootstrap: str, topic: str, values: Sequence[tuple[str, bytes]], chunk: int = 100
) -> float:
    """Produce ``values`` as live traffic, ``chunk`` records every 40 ms; returns seconds."""
    started = time.perf_counter()
    async with AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5, key_serializer=str.encode
    ) as producer:
        for first in range(0, len(values), chunk):
            sent = [await producer.send(topic, v, key=k) for k, v in values[first : first + chunk]]
            await asyncio.gather(*sent)
            await asyncio.sleep(0.04)  # pacing of the traffic, not a wait for an outcome
    return time.perf_counter() - started


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "KAFKA_BOOTSTRAP_SERVERS" not in k}
    env.pop("CLICKHOUSE_URL", None)
    env.pop("METERING_CLICKHOUSE_URL", None)
    return {**env, **extra}


_CLI = (
    "import logging, sys\n"
    "from billing.errors import MeteringError\n"
    "from metering.cli.sink import app\n"
    "logging.basicConfig(level=logging.INFO)\n"
    "try:\n"
    "    app(prog_name='metering sink')\n"
    "except MeteringError as exc:\n"
    "    sys.stderr.write(f'error: {exc}\\n')\n"
    "    sys.exit(1)\n"
)


def _cli(args: list[str], env: dict[str, str], **kwargs: Any) -> Any:
    return subprocess.Popen(
        [sys.executable, "-c", _CLI, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_the_cli_needs_a_broker(tmp_path: Path) -> None:
    process = _cli([], _cli_env(CLICKHOUSE_URL=f"chdb://{tmp_path}/chdb"))
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err.strip().splitlines()[-1].startswith("error: KAFKA_BOOTSTRAP_SERVERS is not set")


def test_the_cli_skips_roles_on_chdb(tmp_path: Path) -> None:
    process = _cli(["roles"], _cli_env(CLICKHOUSE_URL=f"chdb://{tmp_path}/chdb"))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert out.startswith("roles: skipped: the embedded store (chDB) has no users or roles")


async def test_the_cli_sinks_the_topic_and_stops_cleanly_on_sigterm(
    kafka_bootstrap: str, kafka_topic_prefix: str, ledger_topic: str, tmp_path: Path
) -> None:
    # given entries on the topic and `metering sink` running on its own chDB store
    entries = billed_ledger()
    await publish(kafka_bootstrap, ledger_topic, entry_records(entries))
    store = f"chdb://{tmp_path}/chdb"
    env = _cli_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        CLICKHOUSE_URL=store,
        METERING_TOPIC_PREFIX=kafka_topic_prefix,
    )
    process = _cli([], env)
    try:
        async with GroupOffsets(
            kafka_bootstrap, ledger_topic, group_of(kafka_topic_prefix)
        ) as offsets:

            async def caught_up_or_died() -> bool:
                return process.poll() is not None or await offsets.caught_up()

            await wait_until(caught_up_or_died, "`metering sink` to commit the topic")
        assert process.poll() is None, process.communicate()[1]
        # when it gets SIGTERM
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.to_thread(process.communicate, timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # then it flushed, committed, closed and said what it did
    assert process.returncode == 0, err
    assert f"sink stopped: {len(entries)} rows in" in out
    assert "sink stopped" in err  # the consumer was closed (log line)
    # and its store (opened here in another process: chDB allows one path per process)
    check = (
        "from metering.warehouse import connect\n"
        f"c = connect({store!r})\n"
        "print(c.query('SELECT count(), sum(charge_usd) FROM metering.ledger FINAL').result_rows[0])\n"
    )
    counted = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True
    )
    assert counted.stdout.strip() == repr((len(entries), total(entries, "charge_usd")))


def test_the_sink_reads_the_prefixed_topic_as_its_own_group(kafka_topic_prefix: str) -> None:
    config = SinkConfig.for_prefix(kafka_topic_prefix)
    assert config.topic == f"{kafka_topic_prefix}metering.ledger"
    assert config.group_id == f"{kafka_topic_prefix}metering.ledger-sink"
    assert (config.max_rows, config.max_wait_s) == (5000, 0.2)
