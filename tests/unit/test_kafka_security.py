"""Kafka client security from settings, and the local broker's SASL_SSL material and config.

No broker here: ``tests/integration/test_security_kafka.py`` runs the same pieces for real.
"""

from __future__ import annotations

import ssl
import stat
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from deploy.kafka import security
from deploy.kafka.config import BrokerPorts, server_properties
from deploy.kafka.jvm import Jvm
from metering.errors import ConfigError
from metering.kafka_security import KafkaSecurity
from metering.settings import Settings

PASSWORD = "s3cret-Pa55word-never-shown"


@pytest.fixture
def sasl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("METERING_KAFKA_SASL_PASSWORD", "METERING_KAFKA_SASL_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("METERING_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("METERING_KAFKA_SASL_USERNAME", "metering")


def test_plaintext_is_the_default_and_adds_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METERING_KAFKA_SECURITY_PROTOCOL", raising=False)
    found = KafkaSecurity.from_settings(Settings())
    assert found.aiokafka_options() == {"security_protocol": "PLAINTEXT"}
    assert found.faust_options() == {}


def test_sasl_ssl_options_verify_the_broker_and_carry_the_scram_login(
    sasl_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # given the password in a file (with the newline editors add) and no CA file
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.setenv("METERING_KAFKA_SASL_PASSWORD_FILE", str(secret))
    # when the client options are built
    options = KafkaSecurity.from_settings(Settings()).aiokafka_options()
    # then they log in with SCRAM-SHA-512 over TLS that checks chain and host name
    context = options.pop("ssl_context")
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "metering",
        "sasl_plain_password": PASSWORD,
    }
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_faust_gets_the_same_login_as_sasl_credentials(
    sasl_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METERING_KAFKA_SASL_PASSWORD", PASSWORD)
    credentials = KafkaSecurity.from_settings(Settings()).faust_options()["broker_credentials"]
    assert (credentials.protocol.value, credentials.mechanism.value) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
    )
    assert (credentials.username, credentials.password) == ("metering", PASSWORD)
    assert PASSWORD not in repr(credentials)


def test_the_password_never_shows_in_a_repr_or_a_dump(
    sasl_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METERING_KAFKA_SASL_PASSWORD", PASSWORD)
    settings = Settings()
    shown = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        repr(KafkaSecurity.from_settings(settings)),
        KafkaSecurity.from_settings(settings).describe(),
    ]
    for text in shown:
        assert PASSWORD not in text
    assert "**********" in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"METERING_KAFKA_SASL_USERNAME": ""}, "needs METERING_KAFKA_SASL_USERNAME"),
        ({}, "needs METERING_KAFKA_SASL_PASSWORD_FILE"),
        (
            {"METERING_KAFKA_SASL_PASSWORD": "x", "METERING_KAFKA_SASL_PASSWORD_FILE": "/x"},
            "not both",
        ),
        ({"METERING_KAFKA_SASL_PASSWORD_FILE": "/nonexistent/pw"}, "cannot read it"),
        (
            {"METERING_KAFKA_SASL_PASSWORD": "x", "METERING_KAFKA_SSL_CAFILE": "/nonexistent.pem"},
            "METERING_KAFKA_SSL_CAFILE=/nonexistent.pem: no such file",
        ),
    ],
)
def test_incomplete_sasl_settings_name_the_variable_to_fix(
    sasl_env: None, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        KafkaSecurity.from_settings(Settings())


# -- the local broker's material and configuration ---------------------------------------------


def test_material_is_private_and_the_broker_certificate_is_for_loopback(tmp_path: Path) -> None:
    # when the material is made
    material, created = security.ensure_material(tmp_path / "security")
    # then secrets are owner-only, the CA is public
    assert created
    assert stat.S_IMODE(material.directory.stat().st_mode) == 0o700
    for private in (material.keystore, *map(material.password_file, ("metering", "kafka-broker"))):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    # and the broker's certificate, signed by the CA, names 127.0.0.1 and localhost
    ca = x509.load_pem_x509_certificate(material.ca_file.read_bytes())
    broker = x509.load_pem_x509_certificates(material.keystore.read_bytes())[0]
    broker.verify_directly_issued_by(ca)
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert b"PRIVATE KEY" not in material.ca_file.read_bytes()  # the CA's key is never written
    assert isinstance(broker.public_key(), ec.EllipticCurvePublicKey)


def test_material_is_reused_so_a_restarted_broker_keeps_its_users(tmp_path: Path) -> None:
    first, _ = security.ensure_material(tmp_path / "security")
    before = first.password("metering"), first.ca_file.read_bytes()
    again, created = security.ensure_material(tmp_path / "security")
    assert not created
    assert (again.password("metering"), again.ca_file.read_bytes()) == before


def test_storage_formatted_without_users_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meta.properties").write_text("cluster.id=abc\n")
    with pytest.raises(Exception, match="formatted without SCRAM users"):
        security.prepare(tmp_path)


def test_the_only_client_listener_is_sasl_ssl_on_loopback(tmp_path: Path) -> None:
    material, _ = security.ensure_material(tmp_path / "security")
    ports = BrokerPorts(broker=19092, controller=19093)
    values = security.broker_properties(
        server_properties(ports, tmp_path / "data"), ports, material
    )
    assert values["listeners"] == "SASL_SSL://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert values["advertised.listeners"] == "SASL_SSL://127.0.0.1:19092"
    assert values["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
    assert values["inter.broker.listener.name"] == "SASL_SSL"  # no PLAINTEXT door between brokers
    assert values["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert values["controller.listener.names"] == "CONTROLLER"


def test_scram_passwords_reach_the_storage_tool_by_argfile_never_argv(tmp_path: Path) -> None:
    # given a stand-in "java" that records its argv and the argfile it was handed
    fake_java = tmp_path / "java"
    fake_java.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, sys\n"
        f"out = pathlib.Path({str(tmp_path)!r})\n"
        "(out / 'argv').write_text('\\n'.join(sys.argv))\n"
        "(out / 'argfile').write_text(pathlib.Path(sys.argv[-1][1:]).read_text())\n"
    )
    fake_java.chmod(0o700)
    material, _ = security.ensure_material(tmp_path / "security")
    props = tmp_path / "server.properties"
    props.write_text("")
    jvm = Jvm(str(fake_java), tmp_path, "64m", tmp_path / "log4j.properties")
    # when the storage is formatted with the SCRAM users
    jvm.format_storage(
        props, tmp_path / "data", tmp_path / "kafka.log",
        secret_args=security.scram_format_args(material),
    )  # fmt: skip
    # then the passwords were in the argfile only, and the argfile is gone
    argv = (tmp_path / "argv").read_text()
    handed = (tmp_path / "argfile").read_text()
    for user in ("metering", "kafka-broker"):
        assert material.password(user) not in argv
        assert f"name={user},password={material.password(user)}" in handed
    assert '"kafka.tools.StorageTool"' in handed
    assert not list(tmp_path.glob(".*.args"))
