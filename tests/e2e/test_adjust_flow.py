"""A correction end to end on real parts: a charge exhausts a window, ``metering adjust`` gives it
back, and the worker (a subprocess on the real broker) turns that into a new ledger entry
referencing the charge (stored by the sink in ClickHouse), a ``restored`` quota event and a
routing change back to the subscription; the audit of the month then shows the correction
and is clean."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from clickhouse_connect.driver.client import Client

from billing.catalog import default_catalog_path, load_catalog
from gateway import SyncPublisher
from metering.audit.run import audit, read_kafka
from metering.audit.span import month_span
from metering.audit.stored import ReadHere
from metering.corrections import Decision, FullyReversed, issue_adjustment
from metering.sink.writer import ClickHouseLedgerStore
from metering.warehouse import migrate
from schemas import topics
from tests.e2e.conftest import collect, publish
from tests.factories import lifecycle, request, started
from tests.integration.ledger_pipeline import running_sink, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ACCOUNT = "acct_fix"
CHATS = 6  # ≈0.25 Flow each against a 1-Flow 5h cap: the 4th exhausts, the rest go to fallback


@pytest.fixture
def one_flow_cap(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Path]:
    """The shipped catalog with a 1-Flow ZenMux Pro 5h cap (the window still lasts 5 hours)."""
    document = yaml.safe_load(default_catalog_path().read_text(encoding="utf-8"))
    document["versions"][0]["zenmux"]["plans"]["pro"]["caps"]["5h"] = "1"
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    worker_env["METERING_CATALOG"] = str(path)
    yield path


def traffic(now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A Pro account with a fallback key, and chats starting now, 100 ms apart."""
    setup = [
        started(ACCOUNT, when=now - timedelta(minutes=1)),
        lifecycle(
            "fallback_configured",
            ACCOUNT,
            when=now - timedelta(minutes=1),
            enabled=True,
            fallback_key_id="key_payg",
        ),
    ]
    chats = [
        request(
            ACCOUNT,
            start=now + timedelta(milliseconds=100 * i),
            duration=timedelta(milliseconds=50),
            request_id=f"fix_{i}",
        )
        for i in range(CHATS)
    ]
    return setup, chats


async def test_a_correction_frees_an_exhausted_window_and_shows_in_ledger_routing_and_audit(
    one_flow_cap: Path,
    worker: Any,
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    clickhouse_client: Client,
    clickhouse_database: str,
) -> None:
    prefix, db = kafka_topic_prefix, clickhouse_database
    migrate(clickhouse_client, database=db)
    store = ClickHouseLedgerStore(clickhouse_client, db)
    now = datetime.now(UTC).replace(microsecond=0)

    async def stored(count: int) -> bool:
        return len(await asyncio.to_thread(store.entries, ACCOUNT)) >= count

    async with running_sink(kafka_bootstrap, prefix, clickhouse_client, db):
        # given charges that exhausted the 5h window, stored in ClickHouse by the sink
        setup, chats = traffic(now)
        await publish(kafka_bootstrap, prefix, setup)  # the subscription before its traffic
        await collect(kafka_bootstrap, prefix + topics.ROUTING, 1, timeout=60)
        await publish(kafka_bootstrap, prefix, chats)
        await wait_until(lambda: stored(CHATS), "the charges in ClickHouse", timeout_s=120)
        charges = store.entries(ACCOUNT)
        funded = sorted(
            (e for e in charges if e.funding == "subscription"), key=lambda e: e.started_at
        )
        assert len(funded) < CHATS and any(e.fallback_key_id for e in charges)
        crossing = funded[-1]  # the charge that exhausted the window

        # when an operator gives that whole charge back (through the gateway publisher, as
        # `metering adjust` does; in a thread, as the blocking publisher runs its own loop)
        def adjust(adjustment_id: str) -> Decision:
            with SyncPublisher(kafka_bootstrap, topic_prefix=prefix) as publisher:
                return issue_adjustment(
                    store,
                    publisher.publish,
                    entry_id=crossing.entry_id,
                    amount=crossing.debit,
                    reason="charged twice for one chat",
                    adjustment_id=adjustment_id,
                    at=datetime.now(UTC),
                )

        decision = await asyncio.to_thread(adjust, "adj_e2e")
        await wait_until(lambda: stored(CHATS + 1), "the adjustment in ClickHouse", 120)
        # (and a second one of the same charge is refused: nothing is left of it)
        with pytest.raises(FullyReversed):
            await asyncio.to_thread(adjust, "adj_e2e_again")

        # then ClickHouse holds a new adjustment entry referencing it, the charge untouched
        after = {e.entry_id: e for e in store.entries(ACCOUNT)}
        fix = after[decision.entry_id]
        assert (fix.kind, fix.adjusts_entry_id, fix.reason) == (
            "adjustment",
            crossing.entry_id,
            "charged twice for one chat",
        )
        assert (fix.debit, fix.flows) == (-crossing.debit, -crossing.debit)
        assert after[crossing.entry_id] == crossing
        # and the window was restored by the correction, and routing went back to it
        quota = await collect(kafka_bootstrap, prefix + topics.QUOTA, 2)
        assert [(q["type"], q["window_kind"]) for q in quota] == [
            ("exhausted", "5h"),
            ("restored", "5h"),
        ]
        assert quota[1]["reason"] == "correction"
        routes = await collect(kafka_bootstrap, prefix + topics.ROUTING, 3)
        assert [(r["route"], r["reason"]) for r in routes] == [
            ("subscription", "started"),
            ("fallback", "exhausted"),
            ("subscription", "correction"),
        ]

    # and the audit of the month (ClickHouse against the raw log) shows it and is clean
    records = await asyncio.to_thread(read_kafka, kafka_bootstrap, prefix, ACCOUNT, None)
    span = month_span(now.strftime("%Y-%m"))
    stored_rows = ReadHere(store, ACCOUNT, span)
    report = audit(ACCOUNT, span, stored_rows, records, load_catalog(one_flow_cap))
    assert report.clean, [d.describe() for d in report.diff]
    assert [(c["entry_id"], c["adjusts_entry_id"]) for c in report.statement["corrections"]] == [
        (decision.entry_id, crossing.entry_id)
    ]
