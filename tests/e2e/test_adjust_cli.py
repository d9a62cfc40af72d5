"""``metering rebuild`` and ``metering adjust`` as an operator runs them (subprocesses with their
own embedded store): the rebuild fills the store from the ledger topic and says its count
check passed; adjust refuses in one line with exit 1, or publishes the adjustment and prints
the ids to retry with."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from billing.charging import charge_entry_id
from billing.corrections import adjustment_entry_id
from schemas import topics
from tests.e2e.conftest import collect
from tests.integration.ledger_pipeline import LIL, create_topic, entry_records, publish, scenario
from tests.unit.billing.conftest import run_scenario

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def metering(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``metering ARGS`` in its own process (its own chDB engine under METERING_HOME)."""
    return subprocess.run(
        [sys.executable, "-c", "from metering.cli.app import main; main()", *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


async def test_rebuild_then_adjust_from_the_command_line(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    # given the ledger topic holding the billed scenario (a Lilac charge partly refunded)
    ledger = run_scenario(scenario()).ledger
    topic = kafka_topic_prefix + topics.LEDGER
    await create_topic(kafka_bootstrap, topic)
    await publish(kafka_bootstrap, topic, entry_records(ledger))
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "METERING_TOPIC_PREFIX": kafka_topic_prefix,
        "METERING_HOME": str(tmp_path),
    }
    env.pop("CLICKHOUSE_URL", None)  # the embedded store of METERING_HOME, this test's own

    # when the store is rebuilt from it, the command says so and that the counts agree
    rebuilt = await asyncio.to_thread(metering, ["rebuild", "--fresh"], env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.strip().endswith(
        f"count check passed: {len(ledger)} distinct entries in ClickHouse = {len(ledger)} in "
        "the source"
    )

    # then adjust refuses an unknown entry and more than what is left, one line each
    unknown = await asyncio.to_thread(
        metering, ["adjust", "--entry", "ch_nope", "--amount", "1", "--reason", "test"], env
    )
    assert unknown.returncode == 1
    assert last_line(unknown.stderr).startswith("error: no ledger entry ch_nope in ClickHouse")
    refunded = charge_entry_id(LIL, "lil_1")
    charged = next(e.debit for e in ledger if e.entry_id == refunded)
    too_much = await asyncio.to_thread(
        metering, ["adjust", "--entry", refunded, "--amount", str(charged), "--reason", "test"], env
    )
    assert too_much.returncode == 1
    assert last_line(too_much.stderr).startswith(f"error: amount {charged.normalize():f} exceeds")
    # and publishes a valid one, printing the adjustment id, its future entry and a retry
    done = await asyncio.to_thread(
        metering,
        ["adjust", "--entry", refunded, "--amount", "0.001", "--reason", "refund", "--adjustment-id",
         "adj_cli", "--at", "2026-11-02T20:00:00Z"],
        env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"adjustment adj_cli published to {kafka_topic_prefix}{topics.ADJUSTMENTS}: gives back "
        f"0.001 usd of {refunded} (account {LIL}, {(charged - Decimal('0.002')).normalize():f} "
        "usd left after it)",
        f"its ledger entry will be {adjustment_entry_id(LIL, 'adj_cli')}",
        "to retry safely: --adjustment-id adj_cli --at 2026-11-02T20:00:00Z",
    ]
    (sent,) = await collect(kafka_bootstrap, kafka_topic_prefix + topics.ADJUSTMENTS, 1)
    assert (sent["adjustment_id"], sent["entry_id"], sent["amount"], sent["at"]) == (
        "adj_cli",
        refunded,
        "0.001",
        "2026-11-02T20:00:00Z",
    )
