"""``metering kafka up --nodes 3`` / ``status`` / ``down`` as an operator runs them (full form
only: one more cluster start, ≈30 s here)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.kafka import process
from deploy.kafka.state import read_state
from metering.settings import Settings
from streams.admin import cluster_replication

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def metering(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "METERING_HOME": str(home)}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    return subprocess.run(
        [sys.executable, "-c", "from metering.cli.app import main; main()", *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_kafka_up_with_three_nodes_reports_them_and_down_stops_them(tmp_path: Path) -> None:
    # given a home whose jar cache is the machine's (no second fetch)
    settings = Settings()
    home = tmp_path / "home"
    (home / "kafka").mkdir(parents=True)
    (home / "kafka" / settings.kafka_version).symlink_to(
        settings.home / "kafka" / settings.kafka_version
    )

    # when a 3-node cluster is started
    up = metering("kafka", "up", "--nodes", "3", home=home)
    assert up.returncode == 0, up.stderr
    bootstrap = up.stdout.strip()
    pids = [
        state.pid
        for n in (1, 2, 3)
        if (state := read_state(home / "kafka" / "cluster" / f"node-{n}" / "state.json"))
    ]
    try:
        # then it prints three servers alone on stdout, and status finds every node registered
        assert len(bootstrap.split(",")) == 3
        status = metering("kafka", "status", home=home)
        assert status.returncode == 0, status.stdout
        assert status.stdout.count("registered yes") == 3
        # and topics created on it get 3 copies, 2 of them needed per write
        replication = asyncio.run(cluster_replication(settings, bootstrap))
        assert (replication.factor, replication.min_insync) == (3, 2)
        # and a second `up` refuses, naming what runs
        again = metering("kafka", "up", home=home)
        assert again.returncode == 1 and bootstrap in again.stderr
    finally:
        # when it is brought down
        down = metering("kafka", "down", home=home)

    # then every node is gone and status says stopped
    assert down.returncode == 0, down.stderr
    assert "stopped the cluster" in down.stdout
    assert len(pids) == 3 and not any(process.is_alive(pid) for pid in pids)
    assert metering("kafka", "status", home=home).returncode == 3
