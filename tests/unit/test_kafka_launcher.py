"""The local Kafka launcher's pure parts and process handling, without a broker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from deploy.kafka import config, jars, process
from deploy.kafka.launcher import LocalKafka
from deploy.kafka.state import BrokerState, clear_state, read_state, write_state
from metering.errors import ServiceUnavailable


def _parse(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_server_properties_bind_both_listeners_to_loopback_on_the_given_ports(
    tmp_path: Path,
) -> None:
    # given two ports
    ports = config.BrokerPorts(broker=19092, controller=19093)

    # when the properties are rendered
    props = _parse(config.render_properties(config.server_properties(ports, tmp_path / "data")))

    # then clients and the quorum listen on 127.0.0.1 only, on those ports
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert "0.0.0.0" not in config.render_properties(props)
    assert ports.bootstrap_servers == "127.0.0.1:19092"


def test_server_properties_run_one_kraft_node_with_replication_one(tmp_path: Path) -> None:
    # given a data directory
    data = tmp_path / "data"

    # when the properties are rendered
    props = config.server_properties(config.BrokerPorts(1, 2), data)

    # then one node plays both roles and nothing asks for a second replica
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["log.dirs"] == str(data)
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "min.insync.replicas",
        "default.replication.factor",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "true"


def test_rendering_escapes_backslashes_as_java_properties_expect() -> None:
    assert config.render_properties({"log.dirs": r"C:\kafka"}) == "log.dirs=C:\\\\kafka\n"


def test_free_ports_are_distinct_and_bindable_on_loopback() -> None:
    # when ports are picked
    ports = config.free_ports(5)

    # then they differ and each can be bound on 127.0.0.1 right now
    assert len(set(ports)) == 5
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_pick_ports_gives_the_broker_and_the_controller_different_ports() -> None:
    ports = config.pick_ports()
    assert ports.broker != ports.controller


def test_cluster_ids_look_like_kafkas_and_differ() -> None:
    first, second = config.new_cluster_id(), config.new_cluster_id()
    assert len(first) == 22 and "=" not in first
    assert first != second


def test_stored_cluster_id_is_read_back_from_meta_properties(tmp_path: Path) -> None:
    # given a data directory formatted for a cluster
    (tmp_path / "meta.properties").write_text("#\nnode.id=1\ncluster.id=abcDEF123_-xyz\n")

    # then its id is the one to format with again; an unformatted directory has none
    assert config.stored_cluster_id(tmp_path) == "abcDEF123_-xyz"
    assert config.stored_cluster_id(tmp_path / "empty") is None


def _state() -> BrokerState:
    return BrokerState(
        pid=4242,
        broker_port=19092,
        controller_port=19093,
        bootstrap_servers="127.0.0.1:19092",
        version="3.9.2",
        log_path="/tmp/run/kafka.log",
        work_dir="/tmp/run",
        started_at="2026-01-01T00:00:00+0000",
    )


def test_state_file_round_trips(tmp_path: Path) -> None:
    # given a broker state written to a file
    path = tmp_path / "run" / "state.json"
    write_state(path, _state())

    # when it is read back
    # then it is the same state, and no temporary file is left beside it
    assert read_state(path) == _state()
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_state_file_absent_reads_as_none_and_clearing_twice_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_state(path, _state())
    clear_state(path)
    clear_state(path)
    assert read_state(path) is None


def test_damaged_state_file_is_one_line_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"pid": 1}')
    with pytest.raises(ServiceUnavailable, match=r"state\.json") as caught:
        read_state(path)
    assert "\n" not in str(caught.value)


def test_broker_version_is_read_from_the_broker_jar_name(tmp_path: Path) -> None:
    # given the jars of a release, among them clients and scala jars with other versions
    for name in ("kafka-clients-3.9.2.jar", "scala-library-2.13.15.jar", "kafka_2.13-3.9.2.jar"):
        (tmp_path / name).touch()

    # then the broker version is the one of kafka_2.13
    assert jars.broker_version(tmp_path) == "3.9.2"


def test_missing_broker_jar_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match="metering kafka fetch"):
        jars.broker_version(tmp_path)


def test_fetch_is_skipped_when_the_marker_says_it_completed(tmp_path: Path) -> None:
    # given a cache whose fetch completed
    libs = jars.libs_dir(tmp_path, "9.9.9")
    libs.mkdir(parents=True)
    (libs / jars.MARKER).write_text("kafka 9.9.9\n")

    # when fetching again with no Maven at all
    # then the cached directory is returned without running anything
    assert jars.fetch_jars(tmp_path, "9.9.9", mvn="no-such-mvn-here") == libs


def test_fetch_without_maven_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match="no-such-mvn-here") as caught:
        jars.fetch_jars(tmp_path, "9.9.9", mvn="no-such-mvn-here")
    assert "\n" not in str(caught.value)
    assert not jars.is_fetched(jars.libs_dir(tmp_path, "9.9.9"))


def test_launcher_without_java_is_one_line_error(tmp_path: Path) -> None:
    # given jars but no java
    (tmp_path / "kafka_2.13-3.9.2.jar").touch()
    kafka = LocalKafka(tmp_path, java="no-such-java-here", work_dir=tmp_path / "work")

    # then starting says what is missing, in one line, and leaves nothing running
    with pytest.raises(ServiceUnavailable, match="no-such-java-here") as caught:
        kafka.start()
    assert "\n" not in str(caught.value)
    assert not kafka.is_running()


def test_pom_version_is_the_settings_default() -> None:
    from metering.settings import Settings

    assert f"<kafka.version>{Settings().kafka_version}</kafka.version>" in jars.POM.read_text()


def _spawn_group(script: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", script], start_new_session=True)


def _waiter(proc: subprocess.Popen[bytes]) -> Callable[[float], bool]:
    def wait(timeout_s: float) -> bool:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    return wait


def test_stop_group_ends_a_process_on_sigterm() -> None:
    # given a process leading its own group, ready to be signalled
    proc = _spawn_group("import time; time.sleep(60)")

    # when its group is stopped
    clean = process.stop_group(proc.pid, _waiter(proc), grace_s=10.0)

    # then SIGTERM alone ended it
    assert clean
    assert proc.wait(timeout=5) != 0
    assert not process.is_alive(proc.pid)


def test_stop_group_kills_a_process_that_ignores_sigterm() -> None:
    # given a process that ignores SIGTERM (and says so once it does)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            " print('ready', flush=True); time.sleep(60)",
        ],
        start_new_session=True,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"

    # when its group is stopped with a short grace
    clean = process.stop_group(proc.pid, _waiter(proc), grace_s=0.5)

    # then SIGKILL ended it
    assert not clean
    assert proc.wait(timeout=5) == -9
    proc.stdout.close()


def test_a_pid_that_is_not_a_broker_is_not_taken_for_one() -> None:
    # this test process is alive but does not run kafka.Kafka
    assert process.is_alive(os.getpid())
    assert not process.is_broker(os.getpid())
