"""`metering sink --metrics-port` serves what Prometheus scrapes (deploy/prometheus/prometheus.yml).

The sink runs as the operator runs it (a subprocess, its own chDB store), fills ClickHouse
from a ledger topic, and its /metrics shows the rows it inserted and every metric the alert
rules select from the sink.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from deploy.kafka.config import free_ports
from schemas import topics
from tests.integration.ledger_pipeline import billed_ledger, create_topic, entry_records, publish
from tests.observability import alert_rules, promql_metrics

pytestmark = pytest.mark.e2e

WAIT_S = 120.0


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            return str(reply.read().decode())
    except (urllib.error.URLError, ConnectionError):
        return None  # not listening yet


def sample(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


def test_the_sink_serves_its_metrics_for_prometheus(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    # given a ledger topic holding the billed scenario
    topic = f"{kafka_topic_prefix}{topics.LEDGER}"
    asyncio.run(create_topic(kafka_bootstrap, topic))
    asyncio.run(publish(kafka_bootstrap, topic, entry_records(billed_ledger())))
    port = free_ports(1)[0]
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "METERING_TOPIC_PREFIX": kafka_topic_prefix,
        "CLICKHOUSE_URL": f"chdb://{tmp_path / 'chdb'}",
        "METERING_HOME": str(tmp_path),
    }
    env.pop("METERING_CLICKHOUSE_CLUSTER", None)
    # when the sink runs with a metrics port, as `metering sink --metrics-port PORT`
    command = ["sink", "--metrics-port", str(port)]
    with (tmp_path / "sink.log").open("wb") as log:
        sink = subprocess.Popen(
            [sys.executable, "-c", "from metering.cli.app import main; main()", *command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + WAIT_S
            text = scrape(port)
            while text is None or sample(text, "metering_sink_rows_inserted_total") != len(
                billed_ledger()
            ):
                assert sink.poll() is None, (tmp_path / "sink.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "the sink did not insert the scenario"
                time.sleep(0.2)  # poll interval, not a wait for an outcome
                text = scrape(port)
        finally:
            sink.send_signal(signal.SIGTERM)
            sink.wait(timeout=60)
    # then Prometheus finds every sink metric the alert rules select, with its real values
    assert sample(text, "metering_sink_batches_total")
    exported = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    selected = {m for rule in alert_rules() for m in promql_metrics(rule["expr"])}
    from_sink = {m for m in selected if m.startswith("metering_sink_")}
    assert from_sink
    assert from_sink <= exported
    assert sink.returncode == 0
