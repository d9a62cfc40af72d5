"""docker-compose.yml stays in step with the code: services, versions, local-only ports."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from metering.settings import REPO_ROOT, Settings
from tests.fixtures.clickhouse import CLICKHOUSE_IMAGE

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    found = document["services"]
    assert isinstance(found, dict)
    return found


def test_the_pipeline_services_are_declared(services: dict[str, Any]) -> None:
    assert {"kafka", "clickhouse", "worker"} <= services.keys()


def test_kafka_runs_the_release_the_local_launcher_runs(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the Kafka release the settings pin by default
    monkeypatch.delenv("METERING_KAFKA_VERSION", raising=False)
    expected = Settings().kafka_version
    # then the compose image is apache/kafka at exactly that tag
    assert expected == "3.9.2"
    assert services["kafka"]["image"] == f"apache/kafka:{expected}"


def test_clickhouse_is_the_server_the_tests_start(services: dict[str, Any]) -> None:
    image = services["clickhouse"]["image"]
    assert image == CLICKHOUSE_IMAGE
    assert image.startswith("clickhouse/clickhouse-server:2")


def test_the_worker_is_built_here_and_wired_to_the_other_services(
    services: dict[str, Any],
) -> None:
    worker = services["worker"]
    assert worker["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert (REPO_ROOT / worker["build"]["dockerfile"]).is_file()
    assert worker["command"] == ["metering", "worker"]
    env = worker["environment"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"].split(":")[0] == "kafka"
    assert env["CLICKHOUSE_URL"].startswith("http://")
    assert env["CLICKHOUSE_URL"].endswith("@clickhouse:8123")
    # the broker advertises that same address to other containers
    assert (
        env["KAFKA_BOOTSTRAP_SERVERS"]
        in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )


def test_the_worker_waits_for_healthy_services_and_the_migrations(
    services: dict[str, Any],
) -> None:
    depends = services["worker"]["depends_on"]
    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["clickhouse"]["condition"] == "service_healthy"
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["metering", "store", "migrate"]
    for name in ("kafka", "clickhouse"):
        assert "healthcheck" in services[name], name


def test_host_ports_bind_to_localhost_only(services: dict[str, Any]) -> None:
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published, "kafka and clickhouse publish ports for host clients"
    assert all(str(port).startswith("127.0.0.1:") for port in published), published
