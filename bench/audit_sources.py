"""The audit of one account-month from each of its raw-log sources, side by side: the Kafka
input topics (the command's default) against the same records in a ``LOG.jsonl`` (the
baseline), each the ``metering audit`` command end to end in a subprocess.

Run from the repository root (a local broker is started unless ``KAFKA_BOOTSTRAP_SERVERS``
names one; the ledgers are embedded chDB):

    .venv/bin/python -m bench.audit_sources [--log LOG.jsonl] [--rounds 3] [--smoke]

Without ``--log`` the simulator writes the audit's worst case first (the month of
``bench.replay_speed``; ``--smoke`` a few hundred events). The log's records are produced to
the input topics with their own timestamps, then read back as the audit reads them; each
source gets the ledger the pipeline would have written from it (the entries carry their
source position, so a file's and a topic's differ there only), in a database of its own of
one chDB path. The rounds alternate the two commands; each source's best wall time is
printed, and the ratio Kafka / file.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer

from bench import report
from bench.replay_speed import (
    busiest_account,
    month_log,
    month_options,
    read_records,
    stored_ledger,
)
from bench.services import Run, broker, stop_on_sigterm, work_dir
from billing.catalog import load_catalog
from metering.replay.kafka_log import read_inputs
from metering.replay.logfile import LogRecord
from metering.warehouse import release

PREFIX = "bench-audit."
PARTITIONS = 6


async def produce_log(run: Run, log: Path) -> None:
    """Every line of the log to its input topic, keyed and stamped as the line says."""
    await run.create_topics()
    async with AIOKafkaProducer(
        bootstrap_servers=run.bootstrap, linger_ms=20, max_batch_size=1 << 20
    ) as producer:
        pending = []
        for raw in log.read_bytes().splitlines():
            line = json.loads(raw)
            stamp = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
            pending.append(
                await producer.send(
                    run.topic(line["topic"]),
                    json.dumps(line["value"], separators=(",", ":")).encode(),
                    key=line["key"].encode() if line.get("key") else None,
                    timestamp_ms=int(stamp.timestamp() * 1000),
                )
            )
        await asyncio.gather(*pending)


def ledgers(url: str, sources: dict[str, list[LogRecord]]) -> None:
    """For each database named, the ledger the pipeline writes from its records (chDB at
    ``url``, released after: a chDB path is open in one process at a time)."""
    for database, records in sources.items():
        stored_ledger(url, records, load_catalog(), database)
    release(url)


def audited(command: list[str], env: dict[str, str]) -> Callable[[], float]:
    """The command, run once per call: its wall seconds (a non-clean audit stops the bench)."""

    def run() -> float:
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0 or not json.loads(done.stdout)["clean"]:
            sys.exit(
                f"{' '.join(command[3:])}: not clean: {done.stderr[-500:]}{done.stdout[:1500]}"
            )
        return wall

    return run


def main() -> None:
    args = month_options(__doc__.splitlines()[0])
    rounds = args.rounds
    stop_on_sigterm()
    with work_dir() as work, broker() as (bootstrap, described):
        report.header(
            "Audit of one account-month: Kafka input topics against a LOG.jsonl", described
        )
        log = month_log(args, work)
        account = busiest_account(log.read_bytes().splitlines())
        run = Run(bootstrap, f"{PREFIX}{time.time_ns()}.", PARTITIONS, work / "home")
        asyncio.run(produce_log(run, log))
        from_kafka = asyncio.run(read_inputs(bootstrap, run.prefix, account_id=account))
        url = f"chdb://{work / 'chdb'}"
        ledgers(url, {"from_file": read_records(log), "from_kafka": from_kafka})
        command = [
            *(sys.executable, "-c", "from metering.cli.app import main; main()", "audit"),
            *("--account", account, "--period", args.period, "-q", "--format", "json"),
        ]
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "CLICKHOUSE_URL": url}
        env["METERING_TOPIC_PREFIX"] = run.prefix
        sources = {
            "LOG.jsonl (baseline)": audited(
                [*command, "--database", "from_file", "--log", str(log)], env
            ),
            "Kafka input topics": audited([*command, "--database", "from_kafka"], env),
        }
        best = dict.fromkeys(sources, float("inf"))
        for _ in range(rounds):
            for name, audit in sources.items():
                best[name] = min(best[name], audit())
        print(f"\n{len(from_kafka):,} records of {account} (and every discount change), "
              f"{args.period}; best of {rounds} round(s), wall seconds, clean every time\n")  # fmt: skip
        baseline = best["LOG.jsonl (baseline)"]
        report.table(
            [(name, seconds, seconds / baseline) for name, seconds in best.items()],
            ("`metering audit` reading", "wall s", "× the file's"),
        )


if __name__ == "__main__":
    main()
