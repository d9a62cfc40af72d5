"""``metering audit`` reads ClickHouse in a second process while it folds the raw log: what it
reads there is what ClickHouse holds, and each way that read can fail is one line, not a
hang. The embedded stores here are filled by a subprocess and never opened by this one (a
chDB path is locked to the process that opens it; the child must be able to)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from billing.catalog import load_catalog
from billing.errors import MeteringError
from deploy.kafka.config import free_ports
from metering.audit.derive import derive
from metering.audit.rows import LEDGER_ORDER
from metering.audit.run import read_log_file
from metering.audit.span import month_span
from metering.audit.stored import ReadInBackground
from metering.errors import ServiceUnavailable
from metering.warehouse import DEFAULT_DATABASE
from tests.factories import log_lines
from tests.integration.ledger_pipeline import scenario

pytestmark = pytest.mark.integration

FILL = """
import sys
from pathlib import Path
from billing.catalog import load_catalog
from metering.demo.report import replay_ledger
from metering.replay.logfile import LogRecord, read_log
from metering.sink.writer import ClickHouseLedgerStore
from metering.warehouse import DEFAULT_DATABASE, connect, migrate
url, log, left_out = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
with log.open("rb") as stream:
    records = [r for r in read_log(stream) if isinstance(r, LogRecord)]
entries = [e for e in replay_ledger(records, load_catalog()) if e.entry_id not in left_out]
client = connect(url)
migrate(client)
ClickHouseLedgerStore(client, DEFAULT_DATABASE).insert(entries, "test")
"""
"""Fills the ledger at ``url`` with the log's replayed entries, but those named after it."""

HOLD = """
import sys
from metering.warehouse import connect
connect(sys.argv[1])
print("open", flush=True)
sys.stdin.read()
"""
"""Holds the store at ``url`` open until its stdin closes (as a running sink would)."""

WAIT_S = 60.0


def python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True
    )


def metering(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from metering.cli.app import main; main()", *args]
    env = {**os.environ, "CLICKHOUSE_URL": url}
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "log.jsonl"
    path.write_text(log_lines(scenario()), encoding="utf-8")
    return path


def busiest_bill(log: Path) -> tuple[str, str, list[Any]]:
    """The account-month with the most entries, and its rows as the audit derives them."""
    bills: dict[tuple[str, str], list[Any]] = {}
    for account in sorted({v["account_id"] for v in scenario() if "account_id" in v}):
        for row in derive(read_log_file(log, account, None), account, load_catalog()).rows:
            bills.setdefault((account, f"{row.started_at:%Y-%m}"), []).append(row)
    (account, month), rows = max(bills.items(), key=lambda bill: len(bill[1]))
    return account, month, sorted(rows, key=LEDGER_ORDER)


def store(tmp_path: Path, log: Path, *left_out: str) -> str:
    url = f"chdb://{tmp_path / 'chdb'}"
    python(FILL, url, str(log), *left_out)
    return url


def answer_of(reader: ReadInBackground) -> MeteringError:
    """The error ``raise_if_failed`` raises once the child has answered (within ``WAIT_S``)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            reader.raise_if_failed()
        except MeteringError as exc:
            return exc
        time.sleep(0.05)
    raise AssertionError(f"the reader gave no error within {WAIT_S} s")


def test_the_rows_read_in_the_background_are_the_rows_clickhouse_holds(
    tmp_path: Path, log: Path
) -> None:
    account, month, derived = busiest_bill(log)
    url = store(tmp_path, log)
    with ReadInBackground(url, DEFAULT_DATABASE, account, month_span(month)) as reader:
        reader.raise_if_failed()  # still reading, or read: nothing to raise either way
        stored = reader()
    assert len(stored) > 1 and stored == derived


def test_the_audit_command_is_clean_then_names_the_row_clickhouse_lacks(
    tmp_path: Path, log: Path
) -> None:
    account, month, derived = busiest_bill(log)
    command = ("audit", "--account", account, "--period", month, "--log", str(log), "-q")
    clean = metering(*command, "--format", "json", url=store(tmp_path / "whole", log))
    assert clean.returncode == 0, clean.stderr
    report = json.loads(clean.stdout)
    assert report["clean"] and report["counts"]["stored_entries"] == len(derived)
    lost = derived[0].entry_id
    failed = metering(*command, "--format", "json", url=store(tmp_path / "lacking", log, lost))
    assert failed.returncode == 1, failed.stderr
    assert [(d["entry_id"], d["problem"]) for d in json.loads(failed.stdout)["diff"]] == [
        (lost, "missing")
    ]


def test_an_unreachable_clickhouse_is_one_line_raised_as_soon_as_known(
    log: Path,
) -> None:
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    with ReadInBackground(url, DEFAULT_DATABASE, "acct", month_span("2026-01")) as reader:
        early = answer_of(reader)
        with pytest.raises(ServiceUnavailable) as called:
            reader()
    assert isinstance(early, ServiceUnavailable) and str(called.value) == str(early)
    assert f"cannot reach ClickHouse at {url}" in str(early)
    done = metering("audit", "--account", "acct", "--period", "2026-01", "--log", str(log),
                    "-q", url=url)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: {early}"]


def test_a_store_another_process_holds_open_is_refused_in_one_line(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'held'}"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        span = month_span("2026-01")
        refused = pytest.raises(ServiceUnavailable, match="is open in another process")
        with ReadInBackground(url, DEFAULT_DATABASE, "acct", span) as reader, refused:
            reader()
    finally:
        holder.communicate(timeout=WAIT_S)


def test_a_reader_that_dies_is_an_error_not_a_hang(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'chdb'}"
    with ReadInBackground(url, DEFAULT_DATABASE, "acct", month_span("2026-01")) as reader:
        reader._child.kill()  # as an OOM kill would; it cannot have answered yet
        with pytest.raises(ServiceUnavailable, match="ended without an answer"):
            reader()
