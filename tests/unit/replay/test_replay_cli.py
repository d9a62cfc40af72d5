"""``metering replay`` as an operator runs it: a log file in, an output file and a summary out."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.factories import at, discount, lifecycle, log_lines, request, started


def metering(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from metering.cli.app import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def mixed_log() -> str:
    """Both families, a discount, an upgrade, a duplicate and malformed lines."""
    chat = request("acct_z", start=at(1))
    values = [
        started("acct_z"),
        started("acct_l", family="lilac", plan="basic", paid="10"),
        discount("z-ai/glm-4.7", "high", at(0)),
        chat,
        chat,
        request("acct_l", start=at(2), model="z-ai/glm-4.7"),
        lifecycle("upgraded", "acct_l", when=at(30), plan="pro", paid_usd="20"),
        request("acct_l", start=at(31), model="z-ai/glm-4.7"),
    ]
    return (
        log_lines(values)
        + "this is not json\n"
        + json.dumps({"topic": "gateway.requests", "value": {"bad": 1}})
        + "\n"
    )


def test_replay_writes_every_output_line_and_a_summary(tmp_path: Path) -> None:
    log = tmp_path / "LOG.jsonl"
    log.write_text(mixed_log(), encoding="utf-8")
    out = tmp_path / "OUT.jsonl"
    done = metering("replay", "--input", str(log), "--output", str(out))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    topics = [line["topic"] for line in lines]
    assert topics.count("metering.ledger") == 3
    assert topics.count("metering.dlq") == 2
    assert set(topics) <= {"metering.ledger", "metering.quota", "metering.routing", "metering.dlq"}
    lilac = [
        line["value"]
        for line in lines
        if line["topic"] == "metering.ledger" and line["value"]["account_id"] == "acct_l"
    ]
    assert [v["supply_state"] for v in lilac] == ["high", "high"] and lilac[0][
        "multiplier"
    ] == "0.50"
    assert "replay summary" in done.stderr
    assert re.search(r"duplicates ignored\s*│\s*1\s*│", done.stderr), done.stderr


def test_replay_is_byte_identical_when_run_twice(tmp_path: Path) -> None:
    log = tmp_path / "LOG.jsonl"
    log.write_text(mixed_log(), encoding="utf-8")
    outputs = []
    for name in ("a.jsonl", "b.jsonl"):
        assert (
            metering(
                "replay", "-q", "--input", str(log), "--output", str(tmp_path / name)
            ).returncode
            == 0
        )
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1] and outputs[0]


def test_unreadable_input_is_one_readable_line(tmp_path: Path) -> None:
    done = metering(
        "replay", "--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "o")
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: cannot read {tmp_path / 'missing.jsonl'}: no such file"
    ]
