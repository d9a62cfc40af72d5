"""``metering kafka rotate-password`` on a real SASL_SSL broker: after it, the new password
logs in and the old one is refused; a password kafka-configs cannot carry, or a broker that
takes no passwords, is refused in one line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from deploy.kafka import security
from deploy.kafka.launcher import LocalKafka
from deploy.kafka.probe import broker_answers
from metering.cli import kafka
from metering.errors import ConfigError, InputError
from metering.settings import load_settings
from tests.fixtures.kafka import sasl_ssl_broker

pytestmark = pytest.mark.integration

NEW = "rotated-Password-0123456789"


@pytest.fixture(scope="module")
def secure_kafka() -> Iterator[LocalKafka]:
    """A SASL_SSL broker of this module's own: its client user's password is changed here."""
    with sasl_ssl_broker() as broker:
        yield broker


@pytest.fixture
def as_client(monkeypatch: pytest.MonkeyPatch, secure_kafka: LocalKafka) -> Iterator[None]:
    """This process's settings: the broker's client user, its password file and CA."""
    assert secure_kafka.security_material is not None
    for name, value in secure_kafka.security_material.client_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", secure_kafka.bootstrap_servers)
    load_settings.cache_clear()
    yield
    load_settings.cache_clear()


def rotate(password_file: Path) -> Result:
    args = ["rotate-password", "--user", security.CLIENT_USER]
    return CliRunner().invoke(kafka.app, [*args, "--new-password-file", str(password_file)])


def test_after_a_rotation_only_the_new_password_logs_in(
    as_client: None, secure_kafka: LocalKafka, tmp_path: Path
) -> None:
    old = secure_kafka.client_security
    assert broker_answers(secure_kafka.bootstrap_servers, 10.0, security=old)
    new_file = tmp_path / "new.password"
    new_file.write_text(NEW + "\n")

    done = rotate(new_file)

    assert done.exit_code == 0, done.output
    assert "password of metering is replaced" in done.output
    new = replace(old, password=SecretStr(NEW))
    assert broker_answers(secure_kafka.bootstrap_servers, 10.0, security=new)
    assert not broker_answers(secure_kafka.bootstrap_servers, 5.0, security=old)
    # neither password is in the tool's log; its login file is gone
    log = Path(done.output.split("(log ")[1].split(")")[0])
    text = log.read_text()
    assert NEW not in text and old.password.get_secret_value() not in text  # type: ignore[union-attr]
    assert sorted(p.name for p in log.parent.iterdir()) == ["kafka-configs.log", "log4j.properties"]


@pytest.mark.parametrize("password", ["short", "has a space in it", "comma,separated-1234"])
def test_a_password_kafka_configs_cannot_carry_is_refused(
    as_client: None, tmp_path: Path, password: str
) -> None:
    new_file = tmp_path / "new.password"
    new_file.write_text(password)

    done = rotate(new_file)

    assert done.exit_code == 1
    assert isinstance(done.exception, InputError), done.exception


def test_a_plaintext_broker_takes_no_password(
    monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str, tmp_path: Path
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    load_settings.cache_clear()
    new_file = tmp_path / "new.password"
    new_file.write_text(NEW)
    try:
        done = rotate(new_file)
    finally:
        load_settings.cache_clear()

    assert done.exit_code == 1
    assert isinstance(done.exception, ConfigError), done.exception
    assert "PLAINTEXT" in str(done.exception)
