"""Each fault, injected into a real worker and a real sink on the real broker, loses nothing
and charges nothing twice: the harness's fast mode (``metering chaos run --mode fast``).

Every scenario also carries the input faults (10% duplicates, stragglers minutes and days
late, malformed and bad input); the input-fault tests read the run without process faults.
The full mode (20 kills, a 30 s outage) is a command, recorded in docs/RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from reliability.bad_input import BUILDERS
from reliability.run import RunConfig, run
from reliability.scenarios import FAST, SCENARIOS
from reliability.verdict import Verdict

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def chaos(scenario: str, bootstrap: str, work_dir: Path) -> Verdict:
    """One fast run; the ledger store is CLICKHOUSE_URL when it names a server (one process
    per chDB directory: the sink owns an embedded store of its own otherwise)."""
    url = os.environ.get("CLICKHOUSE_URL", "")
    config = RunConfig(
        scenario=SCENARIOS[scenario],
        mode=FAST,
        work_dir=work_dir,
        bootstrap=bootstrap,
        clickhouse_url=url if url.startswith("http") else None,
    )
    return asyncio.run(run(config))


def held(verdict: Verdict) -> None:
    """Every invariant held, and nothing died that the harness did not kill."""
    assert verdict.problems == []
    assert (verdict.lost, verdict.double_charged) == (0, 0)
    assert verdict.ledger.stored == verdict.ledger.expected > 0
    assert verdict.windows_checked > 0 and verdict.routes_checked > 0
    assert verdict.unexpected_exits == []


@pytest.fixture(scope="module")
def inputs_only(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Verdict:
    return chaos("input-faults", kafka_bootstrap, tmp_path_factory.mktemp("input-faults"))


def test_ten_percent_duplicate_deliveries_are_charged_once(inputs_only: Verdict) -> None:
    load = inputs_only.load
    assert load["duplicate"] >= 0.05 * load["request"]
    held(inputs_only)
    assert inputs_only.ledger.charged_twice == () and inputs_only.ledger.duplicate_rows == 0


def test_out_of_order_and_days_late_requests_are_charged_by_their_own_times(
    inputs_only: Verdict,
) -> None:
    assert inputs_only.load["straggler"] > 0 and inputs_only.load["days_late"] > 0
    held(inputs_only)  # equal, entry for entry, to the replay: same windows, same funding
    assert inputs_only.ledger.late >= inputs_only.load["days_late"]


def test_bad_input_lands_in_the_dlq_with_its_bytes_and_the_worker_keeps_charging(
    inputs_only: Verdict,
) -> None:
    letters = inputs_only.dead_letters
    assert set(letters.bad_inputs) >= set(BUILDERS)
    assert all(found == sent > 0 for sent, found in letters.bad_inputs.values())
    assert letters.without_reason == 0 and letters.found == letters.expected
    held(inputs_only)  # traffic after the bad batch is charged, and the worker never died


def test_kill_9_of_the_worker_loses_nothing_and_charges_nothing_twice(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    verdict = chaos("kill-worker", kafka_bootstrap, tmp_path)
    kills = [f for f in verdict.faults if f.action == "kill -9 worker"]
    assert len(kills) == FAST.kills
    held(verdict)


def test_graceful_and_hard_broker_restarts_lose_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    verdict = chaos("broker-restarts", kafka_bootstrap, tmp_path)
    restarts = [f.action for f in verdict.faults]
    assert restarts == ["broker restart, graceful (SIGTERM)", "broker restart, hard (SIGKILL)"]
    held(verdict)


def test_a_clickhouse_outage_is_waited_out_and_a_landed_retry_is_kept_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    verdict = chaos("clickhouse-outage", kafka_bootstrap, tmp_path)
    assert verdict.sink["outage"]["failed_calls"] > 0
    assert verdict.sink["outage"]["landed_then_failed"] == 1  # written, then "timed out"
    assert sum(c["retries_total"] for c in verdict.sink["consumers"]) > 0
    held(verdict)
    assert verdict.ledger.duplicate_rows == 0  # the retried block was deduplicated


def test_a_rebalance_while_the_sink_holds_a_batch_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    verdict = chaos("sink-rebalance", kafka_bootstrap, tmp_path)
    assert "sink revoked unwritten records" in verdict.evidence  # the fault landed
    assert len(verdict.sink["consumers"]) == 2
    held(verdict)


def test_sigterm_flushes_and_commits_and_a_restart_has_no_gap_or_duplicate(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    verdict = chaos("graceful-shutdown", kafka_bootstrap, tmp_path)
    flushed = re.search(r"flushing (\d+) pending", verdict.evidence["sink flushed on stop"])
    assert flushed is not None and int(flushed.group(1)) > 0  # it held records, and wrote them
    stops = {f.action: f.detail for f in verdict.faults}
    assert stops["SIGTERM worker"] == "exit code 0"
    assert stops["SIGTERM sink"].startswith("exit code 0; committed ")
    assert not stops["SIGTERM sink"].endswith("committed 0 records")
    held(verdict)
    assert verdict.ledger.duplicate_rows == 0
