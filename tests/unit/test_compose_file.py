"""docker-compose.yml stays in step with the code: services, versions, local-only ports, and
the `cluster` and `observability` profiles with the config files they mount."""

from __future__ import annotations

import inspect
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml

from metering.cli import worker as worker_cli
from metering.settings import REPO_ROOT, Settings
from metering.sink.consumer import SinkConfig
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


# --- profile `cluster`: a 2-shard x 2-replica ClickHouse cluster with Keeper --------------

CLUSTER_CONFIG = REPO_ROOT / "deploy" / "clickhouse" / "cluster.xml"


def in_profile(services: dict[str, Any], profile: str) -> dict[str, Any]:
    return {n: s for n, s in services.items() if profile in s.get("profiles", [])}


def remote_servers() -> tuple[str, list[list[str]]]:
    """The cluster's name and its hosts, shard by shard, from deploy/clickhouse/cluster.xml."""
    [cluster] = ElementTree.parse(CLUSTER_CONFIG).getroot().findall("remote_servers/*")
    shards = [
        [replica.findtext("host", "") for replica in shard.findall("replica")]
        for shard in cluster.findall("shard")
    ]
    return cluster.tag, shards


def test_the_cluster_profile_declares_keeper_four_servers_and_the_app(
    services: dict[str, Any],
) -> None:
    _, shards = remote_servers()
    nodes = [host for shard in shards for host in shard]
    assert (len(shards), {len(s) for s in shards}) == (2, {2})  # 2 shards x 2 replicas
    assert set(in_profile(services, "cluster")) == {
        "clickhouse-keeper",
        *nodes,
        "migrate-cluster",
        "sink-cluster",
    }
    # the default `docker compose up` starts none of it
    assert not {"clickhouse-keeper", *nodes} & {
        n for n, s in services.items() if "profiles" not in s
    }


def test_each_server_knows_its_shard_and_a_cluster_wide_unique_replica(
    services: dict[str, Any],
) -> None:
    _, shards = remote_servers()
    replicas = []
    for number, hosts in enumerate(shards, start=1):
        for host in hosts:
            node = services[host]
            # the same server the single-node stack and the tests run, with the cluster config
            assert node["image"] == CLICKHOUSE_IMAGE
            assert node["hostname"] == host
            assert node["environment"]["CLICKHOUSE_SHARD"] == str(number)
            replicas.append(node["environment"]["CLICKHOUSE_REPLICA"])
            mounts = [v.split(":")[0] for v in node["volumes"]]
            assert "./deploy/clickhouse/cluster.xml" in mounts
            assert "./deploy/clickhouse/users.xml" in mounts
    # the migration history is one table replicated to every node: {replica} must not repeat
    assert len(replicas) == len(set(replicas)) == 4


def test_the_servers_reach_the_keeper_service(services: dict[str, Any]) -> None:
    config = ElementTree.parse(CLUSTER_CONFIG).getroot()
    keeper = ElementTree.parse(REPO_ROOT / "deploy" / "clickhouse" / "keeper.xml").getroot()
    assert config.findtext("zookeeper/node/host") == "clickhouse-keeper"
    assert config.findtext("zookeeper/node/port") == keeper.findtext("keeper_server/tcp_port")
    assert keeper.findtext("keeper_server/raft_configuration/server/hostname") == (
        "clickhouse-keeper"
    )
    # a Keeper image of the servers' release
    server_tag = CLICKHOUSE_IMAGE.split(":")[1]
    assert services["clickhouse-keeper"]["image"] == f"clickhouse/clickhouse-keeper:{server_tag}"
    # ON CLUSTER DDL has a queue; {shard} and {replica} come from each server's environment
    assert config.findtext("distributed_ddl/path")
    macros = {macro.tag: macro.get("from_env") for macro in config.iterfind("macros/*")}
    assert (macros["shard"], macros["replica"]) == ("CLICKHOUSE_SHARD", "CLICKHOUSE_REPLICA")


def test_the_app_reaches_the_cluster_through_the_setting(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, shards = remote_servers()
    for service in ("migrate-cluster", "sink-cluster"):
        env = services[service]["environment"]
        # the setting names the cluster of remote_servers, and the settings model accepts it
        for variable, value in env.items():
            monkeypatch.setenv(variable, value)
        assert Settings().clickhouse_cluster == name
        host = env["CLICKHOUSE_URL"].split("@")[1].split(":")[0]
        assert host in shards[0] + shards[1]
    assert services["migrate-cluster"]["command"] == ["metering", "store", "migrate"]
    sink = services["sink-cluster"]
    assert sink["depends_on"]["migrate-cluster"]["condition"] == "service_completed_successfully"
    # its own consumer group: both stores get the whole ledger
    group = sink["command"][sink["command"].index("--group") + 1]
    assert group != SinkConfig.for_prefix("").group_id


def test_distributed_inserts_return_only_once_the_shards_stored_them() -> None:
    # the sink commits offsets after its insert returns (metering/sink/README.md)
    users = ElementTree.parse(REPO_ROOT / "deploy" / "clickhouse" / "users.xml").getroot()
    assert users.findtext("profiles/default/distributed_foreground_insert") == "1"


# --- profile `observability`: Prometheus and Grafana -------------------------------------


def test_the_observability_profile_scrapes_the_ports_the_processes_serve(
    services: dict[str, Any],
) -> None:
    assert set(in_profile(services, "observability")) == {"prometheus", "grafana"}
    # the sink serves /metrics where prometheus.yml looks for it, the worker on its default
    sink = services["sink"]["command"]
    assert sink[:2] == ["metering", "sink"]
    assert sink[sink.index("--metrics-port") + 1] == "9464"
    web_port = inspect.signature(worker_cli.worker).parameters["web_port"].default
    assert web_port == 6066
    # beyond their containers' loopback
    for name in ("worker", "sink", "sink-cluster"):
        assert services[name]["environment"]["METERING_WEB_HOST"] == "0.0.0.0"


def test_every_mounted_file_exists(services: dict[str, Any]) -> None:
    mounted = [
        volume.split(":")[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    ]
    assert len(mounted) >= 8
    missing = [path for path in mounted if not (REPO_ROOT / path).exists()]
    assert not missing
