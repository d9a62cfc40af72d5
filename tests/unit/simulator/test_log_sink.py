"""A simulated LOG.jsonl is what ``metering replay`` reads: every clean event is accepted by the
billing core, malformed payloads become dead letters, duplicates are charged once."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from billing.catalog import Catalog
from metering.errors import InputError
from metering.replay.logfile import BadLine, LogRecord, read_log
from metering.replay.run import ReplaySummary, replay_file
from schemas import topics
from schemas.requests import GatewayRequest
from schemas.routing import RoutingState
from simulator import SimulationConfig, deliveries
from simulator.routing import RoutingGate
from simulator.sinks import log_line, write_log, write_log_file
from simulator.stats import SimulationStats


def simulate_and_replay(
    config: SimulationConfig, catalog: Catalog, tmp_path: Path
) -> tuple[SimulationStats, ReplaySummary, list[dict[str, Any]]]:
    log = tmp_path / "LOG.jsonl"
    stats = write_log_file(deliveries(config, catalog), log)
    out = tmp_path / "OUT.jsonl"
    summary = replay_file(log, out, catalog)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return stats, summary, lines


def test_a_clean_run_is_charged_entirely_without_a_dead_letter(
    small: SimulationConfig, catalog: Catalog, tmp_path: Path
) -> None:
    # given a run without faults, written as a log, when it is replayed
    stats, summary, _ = simulate_and_replay(small, catalog, tmp_path)
    # then every request has exactly one ledger entry, and nothing was refused: no unknown
    # account, no model the plan does not allow, no lifecycle event out of place
    assert summary.dead_letters == {}
    assert summary.outputs[topics.LEDGER] == stats.by_kind["request"]
    assert summary.duplicates == 0
    # and the traffic exercises the pipeline: windows exhaust, routes change
    assert summary.exhausted > 0
    assert summary.outputs[topics.ROUTING] > small.accounts


def test_faults_become_dead_letters_and_ignored_duplicates(
    small: SimulationConfig, catalog: Catalog, tmp_path: Path
) -> None:
    # given the same run with every fault injected
    faulty = replace(small, duplicate_rate=0.05, straggler_rate=0.05, malformed_rate=0.03)
    stats, summary, lines = simulate_and_replay(faulty, catalog, tmp_path)
    assert stats.duplicates > 0 and stats.stragglers > 0 and stats.malformed > 0
    # then each malformed payload is one dead letter (bad JSON and missing fields alike)
    assert summary.dead_letters == {"invalid": stats.malformed}
    # and each duplicate was recognised and charged once
    assert summary.duplicates == stats.duplicates
    unique = stats.by_kind["request"] - stats.duplicates
    assert summary.outputs[topics.LEDGER] == unique
    # and the stragglers were charged by their own times, like any request
    charged = {line["value"]["request_id"] for line in lines if line["topic"] == topics.LEDGER}
    assert len(charged) == unique


def test_the_ledger_does_not_depend_on_duplicates_or_malformed_payloads(
    small: SimulationConfig, catalog: Catalog, tmp_path: Path
) -> None:
    # given the clean run and the same run with duplicates and malformed payloads
    # (not stragglers: lateness rightly flags entries ``late``)
    (tmp_path / "clean").mkdir()
    (tmp_path / "faulty").mkdir()
    _, _, clean = simulate_and_replay(small, catalog, tmp_path / "clean")
    faulty = replace(small, duplicate_rate=0.05, malformed_rate=0.05)
    _, _, noisy = simulate_and_replay(faulty, catalog, tmp_path / "faulty")

    def ledger(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        entries = [line["value"] for line in lines if line["topic"] == topics.LEDGER]
        return {
            e["entry_id"]: {k: v for k, v in e.items() if k != "source_offset"} for e in entries
        }

    # then both ledgers hold the same entries, field for field but for the source offsets
    assert ledger(noisy) == ledger(clean)


def test_a_log_line_reads_back_as_the_record_it_was_written_from(
    small: SimulationConfig, catalog: Catalog
) -> None:
    faulty = replace(small, malformed_rate=0.1, duration=120)
    items = list(deliveries(faulty, catalog))
    buffer = io.BytesIO(b"".join(log_line(d) for d in items))
    read = list(read_log(buffer))
    assert len(read) == len(items)
    for item, record in zip(items, read, strict=True):
        if isinstance(record, BadLine):  # a cut-short payload breaks its line
            assert item.fault == "malformed"
            assert item.payload() in record.raw
            continue
        assert isinstance(record, LogRecord)
        assert record.source.topic == item.topic
        assert record.key == item.key
        assert record.payload == item.payload()
        assert record.source.ingest_time == item.at


def test_a_gate_that_refuses_everything_writes_only_what_is_not_a_subscription_request(
    small: SimulationConfig, catalog: Catalog
) -> None:
    class Blocked:
        def route(self, account_id: str) -> RoutingState:
            return RoutingState(
                schema_version=1,
                account_id=account_id,
                route="blocked",
                fallback_key_id=None,
                until=None,
                reason="exhausted",
                seq=1,
                at=small.start,
            )

    stats = SimulationStats()
    buffer = io.BytesIO()
    write_log(deliveries(small, catalog), buffer, RoutingGate(Blocked(), stats), stats)
    written = [json.loads(line) for line in buffer.getvalue().splitlines()]
    requests = [w["value"] for w in written if w["topic"] == topics.REQUESTS]
    assert requests
    assert all(r["billing_mode"] == "payg" for r in requests)
    assert stats.refused > 0
    assert stats.sent == len(written)


@pytest.mark.parametrize("name", ["missing/dir/LOG.jsonl"])
def test_an_unwritable_path_is_one_clear_error(
    name: str, small: SimulationConfig, catalog: Catalog, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="cannot write"):
        write_log_file(deliveries(small, catalog), tmp_path / name)


def test_requests_in_the_log_are_gateway_requests(
    small: SimulationConfig, catalog: Catalog
) -> None:
    first = next(d for d in deliveries(small, catalog) if isinstance(d.value, GatewayRequest))
    line = json.loads(log_line(first))
    assert set(line) == {"topic", "key", "timestamp", "value"}
    assert GatewayRequest.model_validate_json(json.dumps(line["value"])) == first.value
