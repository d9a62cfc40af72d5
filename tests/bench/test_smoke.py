"""Every benchmark runs end to end in its smoke mode (tiny sizes), so none can rot.

Benchmarks measure; they assert nothing on time. These tests only check that each command
completes on the session's broker and prints every row of its table. The figures themselves
are in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300.0


def run_bench(module: str, *args: str, bootstrap: str | None = None) -> str:
    """``python -m bench.<module> *args``; its stdout, after a zero exit."""
    env = {**os.environ}
    if bootstrap is not None:
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    with subprocess.Popen(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.terminate()  # SIGTERM: the bench stops the workers it started, then exits
            out, err = proc.communicate(timeout=120)
            pytest.fail(f"bench.{module} ran over {TIMEOUT_S:.0f}s\n{out[-3000:]}{err[-3000:]}")
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    return out


def test_throughput_measures_the_passthrough_and_the_pipeline(kafka_bootstrap: str) -> None:
    out = run_bench("throughput", "--smoke", bootstrap=kafka_bootstrap)
    assert "raw aiokafka passthrough (baseline)" in out
    assert "1 worker → ledger → ClickHouse" in out


def test_latency_measures_every_figure_and_its_floor(kafka_bootstrap: str) -> None:
    out = run_bench("latency", "--smoke", bootstrap=kafka_bootstrap)
    for figure in ("exhaustion:", "restore:", "freshness:", "Kafka floor"):
        assert figure in out


def test_state_scale_recovers_every_account(kafka_bootstrap: str) -> None:
    out = run_bench("state_scale", "--smoke", bootstrap=kafka_bootstrap)
    assert "0 (empty worker)" in out
    assert "| 200 " in out  # the bench exits non-zero unless all 200 were recovered


def test_leakage_measures_both_gateways_and_obeying_leaks_no_more(kafka_bootstrap: str) -> None:
    out = run_bench("leakage", "--smoke", bootstrap=kafka_bootstrap)
    assert "| gateway ignores routing (baseline) |" in out
    assert "| gateway obeys the routing view " in out
    match = re.search(r"leaked \(unfunded\): baseline (\d+), obeying (\d+)", out)
    assert match is not None, out[-3000:]
    assert int(match[2]) <= int(match[1])


def test_routing_view_memory() -> None:
    out = run_bench("routing_view_memory", "--accounts", "1000")
    assert "RoutingView" in out


def test_audit_sources_audits_from_kafka_and_from_the_file(kafka_bootstrap: str) -> None:
    out = run_bench("audit_sources", "--smoke", bootstrap=kafka_bootstrap)
    assert "| LOG.jsonl (baseline) " in out  # the bench exits non-zero unless both are clean
    assert "| Kafka input topics " in out
