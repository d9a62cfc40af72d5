"""The whole path on real parts: input log → Kafka → worker (a subprocess) → metering.ledger →
sink → ClickHouse, equal entry for entry to ``metering replay`` of the same log."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import Result
from clickhouse_connect.driver.client import Client
from typer.testing import CliRunner

from billing.catalog import load_catalog
from metering.audit.run import AuditReport, audit
from metering.audit.span import month_span
from metering.audit.stored import ReadHere
from metering.cli.audit import app as audit_cli
from metering.replay.kafka_log import read_inputs
from metering.replay.run import replay_file
from metering.settings import load_settings
from metering.sink.writer import ClickHouseLedgerStore
from metering.warehouse import migrate
from schemas import topics
from schemas.ledger import LedgerEntry
from tests.e2e.conftest import SOURCE_FIELDS, collect, ledger_diff, publish
from tests.factories import log_lines, topic_for
from tests.integration.ledger_pipeline import running_sink, scenario, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture
def worker_store() -> str:
    """The production store: tables in RocksDB (rocksdict), under the test's METERING_HOME."""
    return "rocksdb://"


def from_the_future(value: dict[str, Any]) -> bool:
    """A request that starts after now: the live worker rejects it (it checks ingest time)."""
    started_at = value.get("started_at")
    return started_at is not None and datetime.fromisoformat(started_at) > datetime.now(UTC)


def replayed_ledger(log: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    """``metering replay`` of the log file: its ledger lines, without the source position."""
    (tmp_path / "log.jsonl").write_text(log_lines(log), encoding="utf-8")
    replay_file(tmp_path / "log.jsonl", tmp_path / "out.jsonl", load_catalog())
    lines = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    return canonical(
        LedgerEntry.model_validate_json(orjson.dumps(line["value"]))
        for line in lines
        if line["topic"] == topics.LEDGER
    )


def canonical(entries: Iterable[LedgerEntry]) -> list[dict[str, Any]]:
    """Entries as field dicts (money as Decimal: equal values compare equal at any scale)."""
    rows = [entry.model_dump(exclude=set(SOURCE_FIELDS)) for entry in entries]
    return sorted(rows, key=lambda row: (row["account_id"], row["entry_id"]))


async def test_the_ledger_in_clickhouse_equals_the_offline_replay(
    worker: Any,
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    clickhouse_client: Client,
    clickhouse_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clickhouse_url: str,
) -> None:
    # given a log with exhaustion + fallback, leakage, payg, Lilac discounts, a refund and a
    # month boundary, and what the offline replay makes of it
    log = [v for v in scenario() if not from_the_future(v)]
    expected = replayed_ledger(log, tmp_path)
    setup = log[:6]  # the scenario opens with its subscriptions and discounts
    refunds = [v for v in log if topic_for(v) == topics.ADJUSTMENTS]
    traffic = [v for v in log if v not in setup and v not in refunds]
    migrate(clickhouse_client, database=clickhouse_database)
    store = ClickHouseLedgerStore(clickhouse_client, clickhouse_database)

    # when it is published (lifecycle first, the refund after the charge it refunds) while
    # the sink runs
    async with running_sink(
        kafka_bootstrap, kafka_topic_prefix, clickhouse_client, clickhouse_database
    ):
        await publish(kafka_bootstrap, kafka_topic_prefix, setup)
        await collect(kafka_bootstrap, kafka_topic_prefix + topics.ROUTING, 3, timeout=60)
        await publish(kafka_bootstrap, kafka_topic_prefix, traffic)
        await collect(
            kafka_bootstrap, kafka_topic_prefix + topics.LEDGER, len(expected) - len(refunds),
            distinct="entry_id",
        )  # fmt: skip
        await publish(kafka_bootstrap, kafka_topic_prefix, refunds)

        async def all_stored() -> bool:
            return len(await asyncio.to_thread(store.entries)) >= len(expected)

        await wait_until(all_stored, "every ledger entry in ClickHouse", timeout_s=120)

    # then ClickHouse holds exactly the replay's entries, field for field
    assert ledger_diff(expected, canonical(store.entries())) == ([], [], {})
    assert any(row["fallback_key_id"] for row in expected)  # exhausted onto the fallback key
    assert any(row["funding"] == "unfunded" for row in expected)  # leakage
    assert any(row["kind"] == "adjustment" for row in expected)

    # and the audit of every account-month proves it from the raw log in Kafka
    bills = sorted({(row["account_id"], f"{row['started_at']:%Y-%m}") for row in expected})
    assert len(bills) >= 3  # three accounts (a fourth month only once its date has come)

    async def cli(args: list[str]) -> Result:
        """The command in a thread: it runs its own event loop, as from a shell."""
        return await asyncio.to_thread(CliRunner().invoke, audit_cli, args)

    async def audited(account: str, month: str) -> AuditReport:
        records = await read_inputs(kafka_bootstrap, kafka_topic_prefix, account_id=account)
        span = month_span(month)
        return audit(account, span, ReadHere(store, account, span), records, load_catalog())

    for account, month in bills:
        report = await audited(account, month)
        assert report.clean, (account, month, report.diff[:3])
        assert report.sha256 == report.derived_sha256
        assert report.stored_entries == report.derived_entries > 0
    corrected = next(r for r in expected if r["kind"] == "adjustment")
    account, month = corrected["account_id"], f"{corrected['started_at']:%Y-%m}"
    assert (await audited(account, month)).statement["corrections"][0]["entry_id"] == (
        corrected["entry_id"]
    )

    # and the same through the command line, with exit code 0
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("METERING_TOPIC_PREFIX", kafka_topic_prefix)
    monkeypatch.setenv("CLICKHOUSE_URL", clickhouse_url)
    load_settings.cache_clear()
    command = ["--account", account, "--period", month, "--database", clickhouse_database, "-q"]
    try:
        clean = await cli([*command, "--format", "json"])
        assert clean.exit_code == 0, clean.output
        before = orjson.loads(clean.stdout)
        assert before["clean"] and before["diff"] == []

        # when ClickHouse loses one row and another is altered (corruption, done by the test)
        rows = sorted(
            (r for r in expected if r["account_id"] == account and r["kind"] == "charge"
             and f"{r['started_at']:%Y-%m}" == month),
            key=lambda r: r["entry_id"],
        )  # fmt: skip
        lost, altered = rows[0]["entry_id"], rows[1]["entry_id"]
        clickhouse_client.command(
            f"ALTER TABLE {clickhouse_database}.ledger DELETE WHERE entry_id = '{lost}' "
            "SETTINGS mutations_sync = 2"
        )
        clickhouse_client.command(
            f"ALTER TABLE {clickhouse_database}.ledger UPDATE charge_usd = charge_usd + "
            f"toDecimal128('0.01', 12) WHERE entry_id = '{altered}' SETTINGS mutations_sync = 2"
        )

        # then the audit fails, names both rows and why, and the bill's hash changed
        failed = await cli([*command, "--format", "json"])
        assert failed.exit_code == 1, failed.output
        after = orjson.loads(failed.stdout)
        problems = {d["entry_id"]: d for d in after["diff"]}
        assert set(problems) == {lost, altered}
        assert problems[lost]["problem"] == "missing"
        assert problems[altered]["problem"] == "different"
        assert [f["field"] for f in problems[altered]["fields"]] == ["charge_usd"]
        assert after["sha256"] != before["sha256"]
        assert after["derived_sha256"] == before["derived_sha256"]
        table = await cli(command)
        assert table.exit_code == 1 and lost in table.stdout and "DIFFERENCES" in table.stdout
        csv_lines = (await cli([*command, "--format", "csv"])).stdout
        assert f"diff,{lost},problem,missing" in csv_lines.splitlines()
    finally:
        load_settings.cache_clear()
