"""Kafka with SASL_SSL (SCRAM-SHA-512) on the real broker: who gets in, and the whole pipeline
running through it without its password ever showing.

One broker for the module, started by the local launcher in SASL_SSL mode (its own CA, broker
certificate and SCRAM users; ``deploy/kafka/security.py``). Under ``CI=true`` a broker that
cannot start fails these tests.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from clickhouse_connect.driver.client import Client
from pydantic import SecretStr

from deploy.kafka.config import free_ports
from deploy.kafka.launcher import LocalKafka
from deploy.kafka.probe import broker_answers
from gateway import Publisher, RoutingView
from metering.demo.stack import ledger_sink
from metering.kafka_security import KafkaSecurity
from metering.settings import Settings
from metering.sink.consumer import SinkConfig, kafka_consumer
from metering.warehouse import migrate
from schemas import topics
from tests.e2e.conftest import running_worker
from tests.factories import request, started
from tests.fixtures.kafka import sasl_ssl_broker
from tests.integration.ledger_pipeline import wait_until

pytestmark = pytest.mark.integration

REFUSED_WITHIN_S = 30.0


@pytest.fixture(scope="module")
def secure_kafka() -> Iterator[LocalKafka]:
    """A broker whose only client listener is SASL_SSL, for this module."""
    with sasl_ssl_broker() as broker:
        yield broker


def refusals(broker: LocalKafka) -> list[str]:
    """The broker's "Failed authentication" log lines, oldest first."""
    return [
        line
        for line in broker.log_path.read_text(errors="replace").splitlines()
        if "Failed authentication with /127.0.0.1" in line
    ]


async def consume(
    bootstrap: str, security: KafkaSecurity, topic: str, count: int, timeout_s: float = 120.0
) -> list[Any]:
    """The first ``count`` records of ``topic`` (fewer if the time runs out)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **security.aiokafka_options(),
    )
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            found += [record for records in batch.values() for record in records]
    finally:
        await consumer.stop()
    return found


async def test_an_authenticated_client_produces_and_consumes(
    secure_kafka: LocalKafka, kafka_topic_prefix: str
) -> None:
    # given the client user's credentials and the broker's CA
    security = secure_kafka.client_security
    topic = f"{kafka_topic_prefix}secured"
    # when it produces a record
    async with AIOKafkaProducer(
        bootstrap_servers=secure_kafka.bootstrap_servers, acks="all", **security.aiokafka_options()
    ) as producer:
        await producer.send_and_wait(topic, b"only for the authenticated", key=b"k")
    # then it reads it back
    records = await consume(secure_kafka.bootstrap_servers, security, topic, count=1)
    assert [(r.key, r.value) for r in records] == [(b"k", b"only for the authenticated")]


def _plaintext(security: KafkaSecurity) -> dict[str, Any]:
    return {"security_protocol": "PLAINTEXT"}


def _tls_without_sasl(security: KafkaSecurity) -> dict[str, Any]:
    return {"security_protocol": "SSL", "ssl_context": security.ssl_context()}


def _wrong_password(security: KafkaSecurity) -> dict[str, Any]:
    return replace(security, password=SecretStr("not-the-password")).aiokafka_options()


def _unknown_user(security: KafkaSecurity) -> dict[str, Any]:
    return replace(security, username="mallory").aiokafka_options()


@pytest.mark.parametrize(
    ("client", "broker_says"),
    [
        (_plaintext, "(SSL handshake failed)"),
        (_tls_without_sasl, "(Unexpected Kafka request of type METADATA during SASL handshake.)"),
        (_wrong_password, "invalid credentials with SASL mechanism SCRAM-SHA-512"),
        (_unknown_user, "invalid credentials with SASL mechanism SCRAM-SHA-512"),
    ],
    ids=["plaintext", "tls-without-sasl", "wrong-password", "unknown-user"],
)
async def test_a_client_without_valid_credentials_is_refused(
    secure_kafka: LocalKafka, client: Any, broker_says: str
) -> None:
    # given a client that does not present the client user's valid SCRAM login
    options = client(secure_kafka.client_security)
    before = len(refusals(secure_kafka))
    producer = AIOKafkaProducer(
        bootstrap_servers=secure_kafka.bootstrap_servers, request_timeout_ms=10_000, **options
    )
    # when it connects, then it cannot even read the cluster's metadata
    try:
        with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
            async with asyncio.timeout(REFUSED_WITHIN_S):
                await producer.start()
    finally:
        await producer.stop()
    # and the broker logged why it refused it
    logged = refusals(secure_kafka)[before:]
    assert logged, "the broker logged no refusal"
    assert broker_says in logged[-1]


async def test_a_client_that_does_not_trust_the_ca_refuses_the_broker(
    secure_kafka: LocalKafka,
) -> None:
    # given the right login but the system's CAs instead of the broker's own
    security = replace(secure_kafka.client_security, cafile=None)
    producer = AIOKafkaProducer(
        bootstrap_servers=secure_kafka.bootstrap_servers,
        request_timeout_ms=10_000,
        **security.aiokafka_options(),
    )
    # then the client stops at the certificate check: nothing is sent to an unverified server
    try:
        with pytest.raises(KafkaConnectionError):
            async with asyncio.timeout(REFUSED_WITHIN_S):
                await producer.start()
    finally:
        await producer.stop()


# -- the pipeline over SASL_SSL --------------------------------------------------------------


def _contains(path: Path, secret: str) -> bool:
    return secret.encode() in path.read_bytes()


def _argv(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


async def test_worker_sink_and_sdk_charge_a_request_over_sasl_ssl_without_showing_the_password(
    secure_kafka: LocalKafka,
    kafka_topic_prefix: str,
    clickhouse_client: Client,
    clickhouse_database: str,
    tmp_path: Path,
) -> None:
    # given a worker subprocess whose credentials come from its environment
    security = secure_kafka.client_security
    material = secure_kafka.security_material
    assert material is not None and security.password is not None
    password = security.password.get_secret_value()
    bootstrap = secure_kafka.bootstrap_servers
    by_file = "METERING_KAFKA_SASL_PASSWORD_FILE"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("METERING_KAFKA_")},
        **{k: v for k, v in material.client_env().items() if k != by_file},
        "METERING_KAFKA_SASL_PASSWORD": password,  # the riskier way: by value, in the env
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "METERING_TOPIC_PREFIX": kafka_topic_prefix,
        "METERING_HOME": str(tmp_path),
        "METERING_PARTITIONS": "2",
    }
    log_path = tmp_path / "worker.log"
    migrate(clickhouse_client, database=clickhouse_database)
    now = datetime.now(UTC).replace(microsecond=0)
    charged = request("acct_secure", start=now - timedelta(seconds=30))
    config = SinkConfig.for_prefix(kafka_topic_prefix)
    with running_worker(env, free_ports(1)[0], log_path) as worker:
        argv = _argv(worker.pid)
        async with (
            ledger_sink(
                bootstrap, kafka_topic_prefix, clickhouse_client, clickhouse_database,
                consumer=kafka_consumer(bootstrap, config, security),
            ),
            Publisher(bootstrap, topic_prefix=kafka_topic_prefix, security=security) as sdk,
            RoutingView(bootstrap, topic_prefix=kafka_topic_prefix, security=security) as routes,
        ):  # fmt: skip
            # when the gateway SDK publishes a subscription and one request
            await sdk.publish(started("acct_secure", when=now - timedelta(minutes=1)))
            await sdk.publish(charged)

            # then the worker charged it, the sink stored it, the routing view saw the account
            async def stored() -> bool:
                return bool(
                    clickhouse_client.query(
                        f"SELECT count() FROM {clickhouse_database}.ledger FINAL "
                        "WHERE request_id = {r:String}",
                        parameters={"r": charged["request_id"]},
                    ).result_rows[0][0]
                )

            async def routed() -> bool:
                return routes.route("acct_secure") is not None

            await wait_until(stored, "the request's ledger row in ClickHouse", timeout_s=120)
            await wait_until(routed, "the account's route in the SDK's routing view", 60)
        ledger = await consume(bootstrap, security, kafka_topic_prefix + topics.LEDGER, count=1)
    entry = orjson.loads(ledger[0].value)
    assert (entry["request_id"], entry["kind"], entry["funding"]) == (
        charged["request_id"], "charge", "subscription",
    )  # fmt: skip
    assert Decimal(entry["flows"]) > 0
    # and no password is in a log, an argv or a repr
    broker_password = material.password("kafka-broker")
    for secret in (password, broker_password):
        assert not _contains(log_path, secret)
        assert not _contains(secure_kafka.log_path, secret)
        assert secret not in argv
        assert secret not in _argv(os.getpid())
        assert secure_kafka.pid is not None and secret not in _argv(secure_kafka.pid)
    assert password not in repr(security)


# -- the operator's path: `metering kafka up --sasl-ssl` ----------------------------------------


def _metering(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERING_KAFKA_")}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env["METERING_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-c", "from metering.cli.app import main; main()", *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_kafka_up_sasl_ssl_prints_the_client_settings_but_never_the_password(
    tmp_path: Path,
) -> None:
    # given a home whose jar cache is the machine's (no second fetch)
    settings = Settings()
    home = tmp_path / "home"
    (home / "kafka").mkdir(parents=True)
    (home / "kafka" / settings.kafka_version).symlink_to(
        settings.home / "kafka" / settings.kafka_version
    )
    # when an operator starts a detached SASL_SSL broker
    up = _metering("kafka", "up", "--sasl-ssl", home=home)
    try:
        assert up.returncode == 0, up.stderr
        # then stdout is the bootstrap alone, stderr the settings clients need, password by file
        bootstrap = up.stdout.strip()
        exported = dict(
            line.removeprefix("export ").split("=", 1)
            for line in up.stderr.splitlines()
            if line.startswith("export ")
        )
        password_file = Path(exported["METERING_KAFKA_SASL_PASSWORD_FILE"])
        password = password_file.read_text().strip()
        assert exported["METERING_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert password not in up.stdout + up.stderr
        # and a client configured with exactly those settings gets in
        security = KafkaSecurity.sasl_ssl(
            username=exported["METERING_KAFKA_SASL_USERNAME"],
            password=password,
            cafile=Path(exported["METERING_KAFKA_SSL_CAFILE"]),
        )
        assert broker_answers(bootstrap, 10.0, security=security)
        assert not broker_answers(bootstrap, 10.0, security=KafkaSecurity())
        # and `status` logs in the same way, still without showing the password
        status = _metering("kafka", "status", home=home)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "clients:   SASL_SSL SCRAM-SHA-512 as metering" in status.stdout
        assert "answers:   yes" in status.stdout
        assert password not in status.stdout + status.stderr
    finally:
        down = _metering("kafka", "down", "--wipe", home=home)
        assert down.returncode == 0, down.stderr
