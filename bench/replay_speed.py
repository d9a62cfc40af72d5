"""Replay and audit speed: ``metering replay`` against plain JSON parsing of the same file,
and the audit of one account-month, stage by stage.

Run from the repository root (no broker needed; the audit's ledger is embedded chDB):

    .venv/bin/python -m bench.replay_speed [--log LOG.jsonl] [--rounds 3] [--smoke]

Without ``--log`` the simulator writes the audit's worst case first: one account, one month,
≈ 100k requests (the command is printed); ``--smoke`` a few hundred events instead.

In one invocation, on the same file, each subject's best of ``--rounds``, timed by the
process's CPU seconds (the neighbours' load inflates them much less than wall time):

1. the floor: ``json.loads`` of every line;
2. ``read_log``: lines → records (the reader of the replay and of the audit);
3. the fold: the billing core over records already in memory (what the audit re-derives),
   with the cyclic GC on — the core's own cost (the shells pause the GC while they fold);
4. ``metering replay``: ``replay_file`` — read, fold and write OUT.jsonl.

Then the audit of the log's busiest account over ``--period`` against a ledger in embedded
ClickHouse that holds the replayed entries: each stage timed alone as ``audit()`` runs it
(read the log, the ClickHouse rows, the fold, the derived rows, the statement, the rows
compared), ``audit()`` as a whole (best of ``--rounds``), and the ``metering audit`` command
end to end in a subprocess (Python start-up and imports included; its CPU is the child's
and the ClickHouse reader's it starts, whose read overlaps the fold). Each goal of issue #7
item 5 and issue #6 item 4 is printed next to its figure; the command's wall time also as a
multiple of the floor's (``json.loads`` of the same log, in the same run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bench import report
from bench.services import work_dir
from billing.catalog import Catalog, load_catalog
from billing.engine import Engine
from billing.replay import Replay
from metering.audit.derive import derive
from metering.audit.rows import LEDGER_ORDER, from_tuples
from metering.audit.run import audit, read_log_file
from metering.audit.span import AuditSpan, month_span
from metering.audit.statement import build_statement, statement_hash
from metering.audit.stored import ReadHere
from metering.demo.report import replay_ledger
from metering.replay.collector import collector_paused
from metering.replay.logfile import LogRecord, read_log
from metering.replay.run import replay_file
from metering.sink.writer import ClickHouseLedgerStore
from metering.warehouse import DEFAULT_DATABASE, connect, migrate, release
from schemas import topics

MONTH = ("--accounts", "1", "--rate", "0.0386", "--duration", "2592000")
SMOKE = ("--accounts", "1", "--rate", "0.0386", "--duration", "20000")
START = "2026-11-01T00:00:00Z"
INSERT_BATCH = 50_000
T = TypeVar("T")


def simulate(log: Path, shape: tuple[str, ...]) -> None:
    command = [
        *("metering", "simulate", *shape, "--start", START, "--no-plan-limits"),
        *("--log", str(log)),
    ]
    print("log written by: .venv/bin/" + " ".join(command))
    cli = [sys.executable, "-c", "from metering.cli.app import main; main()", *command[1:]]
    subprocess.run(cli, check=True, capture_output=True)


def timed(work: Callable[[], T], rounds: int) -> tuple[float, float, T]:
    """Best CPU and best wall seconds of ``rounds`` (≥ 1) runs of ``work``, and its result."""
    best_cpu = best_wall = float("inf")
    for _ in range(rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        result = work()
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return best_cpu, best_wall, result


def read_records(log: Path) -> list[LogRecord]:
    with log.open("rb") as stream:
        return [r for r in read_log(stream) if isinstance(r, LogRecord)]


def fold(records: list[LogRecord], catalog: Catalog) -> int:
    engine = Engine(catalog, accounts={}, seen={}, discounts={})
    return sum(1 for _ in Replay(engine).run((r.source, r.payload, r.key) for r in records))


def busiest_account(lines: list[bytes]) -> str:
    counts: Counter[str] = Counter(
        line["value"]["account_id"]
        for line in map(json.loads, lines)
        if line.get("topic") == topics.REQUESTS
    )
    return counts.most_common(1)[0][0]


def speed_table(
    log: Path, catalog: Catalog, rounds: int, work: Path
) -> tuple[list[LogRecord], float]:
    """Figures 1-4; returns the records (the audit's ledger is built from them) and the
    floor's wall seconds."""
    lines = log.read_bytes().splitlines()
    n = len(lines)
    floor, floor_wall, _ = timed(lambda: [json.loads(line) for line in lines], rounds)
    reader, reader_wall, records = timed(lambda: read_records(log), rounds)
    core, core_wall, _ = timed(lambda: fold(records, catalog), rounds)
    out = work / "OUT.jsonl"
    replay, replay_wall, _ = timed(lambda: replay_file(log, out, catalog), rounds)
    print(f"\n{n:,} events; best of {rounds} round(s); rates from CPU time (wall in brackets)\n")
    print("| subject | events/s | µs/event | share of the floor's rate |")
    print("|---|---:|---:|---:|")
    for name, cpu, wall in (
        ("`json.loads` of each line (the floor)", floor, floor_wall),
        ("`read_log`: lines → records", reader, reader_wall),
        ("fold: billing core over records in memory", core, core_wall),
        ("`metering replay`: read + fold + write", replay, replay_wall),
    ):
        print(
            f"| {name} | {n / cpu:,.0f} ({n / wall:,.0f}) | {cpu / n * 1e6:.1f} "
            f"({wall / n * 1e6:.1f}) | {floor / cpu:.1%} |"
        )
    print(
        f"\nreplay goal (issue #7 item 5): ≥ 50% of the floor's rate; measured {floor / replay:.1%}"
    )
    return records, floor_wall


def stored_ledger(
    url: str, records: list[LogRecord], catalog: Catalog, database: str = DEFAULT_DATABASE
) -> None:
    """The ledger ClickHouse would hold for the log: replayed, inserted as the sink does."""
    client = connect(url)
    migrate(client, database=database)
    store = ClickHouseLedgerStore(client, database)
    entries = replay_ledger(records, catalog)
    for start in range(0, len(entries), INSERT_BATCH):
        store.insert(entries[start : start + INSERT_BATCH], f"bench-{start}")


def audit_table(
    log: Path,
    url: str,
    account: str,
    span: AuditSpan,
    catalog: Catalog,
    period: str,
    rounds: int,
    floor_wall: float,
) -> None:
    """The audit of ``account``: its stages as ``audit()`` runs them (cyclic GC paused), the
    whole call (best of ``rounds``), and the ``metering audit`` command end to end."""
    store = ClickHouseLedgerStore(connect(url), DEFAULT_DATABASE)
    window = (span.start, span.end)
    stages: list[tuple[str, float, float]] = []

    def stage(name: str, work: Callable[[], T]) -> T:
        cpu, wall, result = timed(work, 1)
        stages.append((name, cpu, wall))
        return result

    records = stage(
        "read the log (the account's records)", lambda: read_log_file(log, account, None)
    )
    with collector_paused():
        stored = stage("ClickHouse rows", lambda: from_tuples(store.rows(account, window)))
        derivation = stage(
            "fold (re-derive the account)", lambda: derive(records, account, catalog)
        )
        derived = stage(
            "derived rows of the span, in the ledger's order",
            lambda: sorted(
                (r for r in derivation.rows if span.holds(r.started_at)), key=LEDGER_ORDER
            ),
        )
        stage(
            "statement + SHA-256",
            lambda: statement_hash(build_statement(account, span, stored, derivation.windows)),
        )
        same = stage("rows compared (equal: one statement, no diff)", lambda: derived == stored)
    here = ReadHere(store, account, span)
    cpu, wall, whole = timed(lambda: audit(account, span, here, records, catalog), rounds)
    stages.append(("`audit()` as a whole (the stages above minus the read)", cpu, wall))
    release(url)  # chDB allows one process per directory: free it for the command
    command = ("audit", "--account", account, "--period", period, "--log", str(log), "-q")
    env = {**os.environ, "CLICKHOUSE_URL": url}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", "from metering.cli.app import main; main()", *command, "--format", "json"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    command_wall = time.perf_counter() - started
    stages.append(("`metering audit` command, end to end", child_cpu, command_wall))
    print(f"\naudit of {account}, {period}: {len(stored):,} stored entries, "
          f"{len(derived):,} derived, rows equal {same}, clean {whole.clean}")  # fmt: skip
    print(f"command: .venv/bin/metering {' '.join(command)}  (exit {done.returncode})\n")
    print("| audit stage | CPU s | wall s |")
    print("|---|---:|---:|")
    for name, seconds, wall_seconds in stages:
        print(f"| {name} | {seconds:.2f} | {wall_seconds:.2f} |")
    print(f"\naudit goal (issue #7 item 5): `audit()` ≤ 1 s; measured {cpu:.2f} s CPU")
    print(
        f"audit goal (issue #6 item 4): a few seconds; `metering audit` measured "
        f"{command_wall:.2f} s wall end to end, {command_wall / floor_wall:.1f}× the floor's "
        f"{floor_wall:.2f} s"
    )
    if done.returncode != 0 or not whole.clean:
        sys.exit(f"the audit is not clean: {done.stderr[-2000:]}")


def month_options(description: str) -> argparse.Namespace:
    """``--log``, ``--period``, ``--rounds`` (1 with ``--smoke``) of an audit bench."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--log", type=Path, help="LOG.jsonl (default: simulate one month)")
    parser.add_argument("--period", default="2026-11", help="audited month (default 2026-11)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a few hundred events, one round")
    args = parser.parse_args()
    args.rounds = 1 if args.smoke else max(1, args.rounds)
    return args


def month_log(args: argparse.Namespace, work: Path) -> Path:
    """``--log``, or the month (``--smoke``: a few hundred events) simulated into ``work``."""
    if args.log is not None:
        return Path(args.log)
    log = work / "LOG.jsonl"
    simulate(log, SMOKE if args.smoke else MONTH)
    return log


def main() -> None:
    args = month_options(__doc__.splitlines()[0])
    rounds = args.rounds
    catalog = load_catalog()
    print("# Replay and audit speed")
    print(f"machine: {report.machine()}")
    print(report.load())
    with work_dir() as work:
        log = month_log(args, work)
        records, floor_wall = speed_table(log, catalog, rounds, work)
        url = f"chdb://{work / 'chdb'}"
        stored_ledger(url, records, catalog)
        account = busiest_account(log.read_bytes().splitlines())
        span = month_span(args.period)
        audit_table(log, url, account, span, catalog, args.period, rounds, floor_wall)
    print(report.load())


if __name__ == "__main__":
    main()
