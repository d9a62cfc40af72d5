"""The live worker on a real broker produces the ledger ``metering replay`` produces offline."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any

import orjson
import pytest

from schemas import topics
from tests.e2e.conftest import SOURCE_FIELDS, collect, publish
from tests.factories import at, discount, lifecycle, request, started
from tests.integration.ledger_pipeline import wait_until
from tests.unit.billing.conftest import run_scenario

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any] | bytes]]:
    """Lifecycle and discounts first, then traffic: exhaustion, fallback, duplicate, bad input."""
    setup = [
        started("acct_zen"),
        lifecycle(
            "fallback_configured", "acct_zen", when=at(-30), enabled=True, fallback_key_id="kp"
        ),
        started("acct_lil", family="lilac", plan="basic", paid="10"),
        discount("z-ai/glm-4.7", "surplus", at(-10)),
    ]
    traffic: list[dict[str, Any] | bytes] = [
        request("acct_zen", start=at(i), request_id=f"z{i}") for i in range(195)
    ]
    traffic += [
        request("acct_lil", start=at(i), model="z-ai/glm-4.7", request_id=f"l{i}") for i in range(5)
    ]
    traffic.append(traffic[3])  # a duplicate delivery
    # the log's own clock passes the 5h reset (the live worker's wall clock already has)
    traffic.append(request("acct_lil", start=at(hours=6), model="z-ai/glm-4.7", request_id="late"))
    traffic.append(b'{"schema_version": 1, "request_id": "broken"')
    return setup, traffic


def canonical(values: list[Any]) -> list[dict[str, Any]]:
    rows = [
        {k: v for k, v in orjson.loads(x.model_dump_json()).items() if k not in SOURCE_FIELDS}
        for x in values
    ]
    return sorted(rows, key=lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS))


def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cleaned = [{k: v for k, v in r.items() if k not in SOURCE_FIELDS} for r in rows]
    return sorted(cleaned, key=lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS))


def test_ledger_from_the_worker_equals_offline_replay(
    worker: Any, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    setup, traffic = scenario()
    expected = run_scenario([*setup, *traffic])
    prefix = kafka_topic_prefix
    asyncio.run(publish(kafka_bootstrap, prefix, setup))
    started_routes = asyncio.run(collect(kafka_bootstrap, prefix + topics.ROUTING, 2, timeout=60))
    assert {r["account_id"] for r in started_routes} == {"acct_zen", "acct_lil"}
    asyncio.run(publish(kafka_bootstrap, prefix, traffic))
    ledger = asyncio.run(collect(kafka_bootstrap, prefix + topics.LEDGER, len(expected.ledger)))
    assert strip(ledger) == canonical(expected.ledger)
    quota = asyncio.run(collect(kafka_bootstrap, prefix + topics.QUOTA, len(expected.quota)))
    assert strip(quota) == canonical(expected.quota)
    routing = asyncio.run(collect(kafka_bootstrap, prefix + topics.ROUTING, len(expected.routing)))
    assert strip(routing) == canonical(expected.routing)
    dead = asyncio.run(collect(kafka_bootstrap, prefix + topics.DLQ, 1))
    assert [d["code"] for d in dead] == ["invalid"]


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_worker_serves_status_usage_and_metrics(
    worker: Any, worker_port: int, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    setup, traffic = scenario()
    asyncio.run(publish(kafka_bootstrap, kafka_topic_prefix, [*setup, *traffic[:10]]))
    asyncio.run(collect(kafka_bootstrap, kafka_topic_prefix + topics.LEDGER, 10))
    code, body = get(worker_port, "/status")
    status = orjson.loads(body)
    assert code == 200
    assert status["models"]["z-ai/glm-4.7"]["current_subscription_credit_multiplier"] == "0.25"
    code, body = get(worker_port, "/accounts/acct_zen/usage")
    usage = orjson.loads(body)
    assert code == 200 and usage["route"]["route"] == "subscription"
    period = next(w for w in usage["windows"] if w["kind"] == "period")  # the 7d one is over
    assert period["cap"] is None and Decimal(period["consumed"]) > 0
    assert get(worker_port, "/accounts/nobody/usage")[0] == 404
    # counted once the batch is durable, which is just after its entries are visible
    counted = b'metering_ledger_entries_total{funding="subscription"} 10.0'

    async def scraped() -> bool:
        return counted in (await asyncio.to_thread(get, worker_port, "/metrics"))[1]

    asyncio.run(wait_until(scraped, "the 10 ledger entries in /metrics", timeout_s=30))
    code, body = get(worker_port, "/metrics")
    assert code == 200 and counted in body
    # read from Faust's consumer at scrape time: the lag of the partitions this worker owns
    assert b"metering_consumer_lag_records{" in body
    assert b"metering_reset_overdue_seconds " in body
