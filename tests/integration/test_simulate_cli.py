"""``metering simulate`` as an operator runs it: publishing to a real broker at full speed
delivers exactly the run's records, and a ``--log`` file is one ``metering replay`` accepts."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from billing.catalog import load_catalog
from schemas import topics
from schemas.routing import RoutingState
from simulator import SimulationConfig, Traffic, deliveries
from simulator.routing import RoutingGate
from simulator.stats import SimulationStats

pytestmark = pytest.mark.integration

WAIT_S = 90.0
RUN = ["--seed", "11", "--accounts", "16", "--rate", "1", "--duration", "120"]
FAULTS = ["--duplicate-rate", "0.1", "--straggler-rate", "0.05", "--malformed-rate", "0.05"]
CONFIG = SimulationConfig(
    seed=11,
    accounts=16,
    rate=1.0,
    duration=120,
    duplicate_rate=0.1,
    straggler_rate=0.05,
    malformed_rate=0.05,
)
"""The run ``RUN + FAULTS`` describes, with the command's other defaults."""
INPUTS = (topics.REQUESTS, topics.DISCOUNTS, topics.SUBSCRIPTIONS)

_CLI = (
    "import sys\n"
    "from billing.errors import MeteringError\n"
    "from metering.cli.{module} import app\n"
    "try:\n"
    "    app(prog_name='metering {module}')\n"
    "except MeteringError as exc:\n"
    "    sys.stderr.write(f'error: {{exc}}\\n')\n"
    "    sys.exit(1)\n"
)


async def _cli(module: str, args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``metering <module> ARGS`` as a subprocess; (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CLI.format(module=module),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(WAIT_S * 2):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "KAFKA_BOOTSTRAP_SERVERS" not in k}
    env.pop("METERING_TOPIC_PREFIX", None)
    return {**env, **extra}


def _expected() -> Counter[tuple[str, str, bytes]]:
    return Counter((d.topic, d.key, d.payload()) for d in deliveries(CONFIG, load_catalog()))


async def _read_back(bootstrap: str, prefix: str, count: int) -> Counter[tuple[str, str, bytes]]:
    """Every record of the three input topics, once ``count`` arrived (or a failure naming
    how many did within ``WAIT_S``); then checks that nothing more is there."""
    consumer = AIOKafkaConsumer(
        *(prefix + topic for topic in INPUTS),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: Counter[tuple[str, str, bytes]] = Counter()
    try:
        try:
            async with asyncio.timeout(WAIT_S):
                while got.total() < count:
                    batches = await consumer.getmany(timeout_ms=500)
                    for records in batches.values():
                        for record in records:
                            assert record.key is not None and record.value is not None
                            topic = record.topic.removeprefix(prefix)
                            got[(topic, record.key.decode(), record.value)] += 1
        except TimeoutError:
            pytest.fail(f"read {got.total()} of {count} records within {WAIT_S:.0f}s")
        partitions = [
            TopicPartition(prefix + topic, p)
            for topic in INPUTS
            for p in consumer.partitions_for_topic(prefix + topic) or ()
        ]
        ends = await consumer.end_offsets(partitions)
        assert sum(ends.values()) == count, "the topics hold more records than the run sent"
    finally:
        await consumer.stop()
    return got


async def test_kafka_mode_publishes_exactly_the_runs_records(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    # given the records the run consists of, computed in-process from the same options
    expected = _expected()
    assert expected.total() > 100
    # when the command publishes them at full speed
    env = _env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        METERING_TOPIC_PREFIX=kafka_topic_prefix,
        METERING_PARTITIONS="2",
        METERING_HOME=str(tmp_path),
    )
    code, out, err = await _cli("simulate", [*RUN, *FAULTS, "--speed", "0"], env)
    assert code == 0, err
    # then the broker holds exactly those records — topic, key and bytes — no more
    assert await _read_back(kafka_bootstrap, kafka_topic_prefix, expected.total()) == expected
    # and the summary says how many were sent
    row = next(line for line in out.splitlines() if "total sent" in line)
    assert str(expected.total()) in row.split()


async def test_obey_routing_refuses_blocked_accounts_and_serves_fallback_ones(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    # given routes on metering.routing before the run: two accounts blocked, one on fallback
    traffic = Traffic(CONFIG, load_catalog())
    chosen = [a.account_id for a in traffic.accounts[:3]]
    routes = {
        account: RoutingState(
            schema_version=1,
            account_id=account,
            route=route,
            fallback_key_id="key_fallback" if route == "fallback" else None,
            until=None,
            reason="exhausted",
            seq=1,
            at=CONFIG.start,
        )
        for account, route in zip(chosen, ("blocked", "blocked", "fallback"), strict=True)
    }
    async with AIOKafkaProducer(bootstrap_servers=kafka_bootstrap) as producer:
        for state in routes.values():
            await producer.send_and_wait(
                kafka_topic_prefix + topics.ROUTING,
                state.model_dump_json().encode(),
                key=state.account_id.encode(),
            )
    # and what a gateway obeying them sends, computed in-process with the same gate
    stats = SimulationStats()
    gate = RoutingGate(_Routes(routes), stats)
    expected = Counter(
        (d.topic, d.key, d.payload()) for d in deliveries(CONFIG, load_catalog()) if gate.admit(d)
    )
    assert stats.refused > 0 and stats.rerouted > 0
    # when the command runs obeying routing
    env = _env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        METERING_TOPIC_PREFIX=kafka_topic_prefix,
        METERING_PARTITIONS="2",
        METERING_HOME=str(tmp_path),
    )
    args = [*RUN, *FAULTS, "--speed", "0", "--obey-routing"]
    code, out, err = await _cli("simulate", args, env)
    assert code == 0, err
    # then the broker holds what the obeying gateway sent, and the summary counts the refusals
    assert await _read_back(kafka_bootstrap, kafka_topic_prefix, expected.total()) == expected
    row = next(line for line in out.splitlines() if "refused" in line)
    assert str(stats.refused) in row.split()


class _Routes:
    def __init__(self, states: dict[str, RoutingState]) -> None:
        self.states = states

    def route(self, account_id: str) -> RoutingState | None:
        return self.states.get(account_id)


async def test_log_mode_writes_a_log_that_metering_replay_accepts(tmp_path: Path) -> None:
    # given a simulated log with every fault injected
    log, out = tmp_path / "LOG.jsonl", tmp_path / "OUT.jsonl"
    code, _, err = await _cli("simulate", [*RUN, *FAULTS, "--log", str(log)], _env())
    assert code == 0, err
    expected = list(deliveries(CONFIG, load_catalog()))
    assert len(log.read_bytes().splitlines()) == len(expected)
    # when ops replay it
    code, _, err = await _cli("replay", ["--input", str(log), "--output", str(out), "-q"], _env())
    # then every unique request is charged once and every malformed payload is a dead letter
    assert code == 0, err
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    emitted = Counter(line["topic"] for line in lines)
    requests = {d.payload() for d in expected if d.kind == "request"}
    assert emitted[topics.LEDGER] == len(requests)
    assert emitted[topics.DLQ] == sum(1 for d in expected if d.fault == "malformed")


async def test_kafka_mode_without_a_broker_setting_is_one_line_error() -> None:
    code, _, err = await _cli("simulate", [*RUN, "--speed", "0"], _env())
    assert code == 1
    assert err.strip().splitlines() == [
        "error: KAFKA_BOOTSTRAP_SERVERS is not set: `metering kafka up` prints one "
        "(or pass --log PATH to write a LOG.jsonl instead)"
    ]


async def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    log = str(tmp_path / "LOG.jsonl")
    for args, message in (
        (["--log", log, "--speed", "2"], "error: --speed and --obey-routing are for"),
        (["--log", log, "--obey-routing"], "error: --speed and --obey-routing are for"),
        (["--log", log, "--rate", "0"], "error: rate must be a positive number"),
        (["--log", log, "--start", "2026-11-02T09:00:00"], "error: --start"),
        (["--log", log, "--duplicate-rate", "1.5"], "error: duplicate_rate must be between"),
    ):
        code, _, err = await _cli("simulate", args, _env())
        assert code == 1, args
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), (args, err)
