"""The local broker's SASL_SSL mode: a generated CA, the broker's certificate, SCRAM users.

Why these choices:

- **Certificates from the ``cryptography`` package, as PEM**: one Python call instead of five
  ``keytool`` JVM runs, and PEM is what both sides read as is (Kafka's
  ``ssl.keystore.type=PEM``, Python's ``ssl`` module). The broker's certificate names
  ``IP:127.0.0.1`` and ``DNS:localhost``, so clients verify the host name, not just the chain.
  The CA's private key is never written: nothing is signed after the first start.
- **SCRAM-SHA-512 users created when the storage is formatted** (``StorageTool format
  --add-scram``, the KRaft way): the broker accepts them from its first second, with no
  unauthenticated window in which to create them. The format command reads its arguments
  from a 0600 ``@argfile`` (``jvm.py``), so passwords never appear in a process's argv.
- **One client-facing listener, SASL_SSL, also used between brokers**: a PLAINTEXT
  inter-broker listener would be a second door that needs no password. Only the KRaft
  controller listener stays PLAINTEXT on 127.0.0.1 (Kafka cannot authenticate a controller
  listener with SCRAM: the credentials live in the metadata the controller serves).

Everything lives in ``<work dir>/security`` (0700): ``ca.pem`` (what clients trust),
``broker.pem`` (key + chain, 0600) and one ``<user>.password`` file per SCRAM user (0600).
Material found there is reused, so a restarted broker keeps the users its storage holds.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from deploy.kafka.config import HOST, BrokerPorts, stored_cluster_id
from metering.errors import ServiceUnavailable
from metering.kafka_security import KafkaSecurity, Mechanism

MECHANISM: Mechanism = "SCRAM-SHA-512"
CLIENT_USER = "metering"
"""The pipeline's services (worker, sink, gateways, CLI) authenticate as this user."""
BROKER_USER = "kafka-broker"
"""The broker's own identity on the inter-broker listener."""
LISTENER = "SASL_SSL"
VALIDITY = datetime.timedelta(days=3650)
"""A local broker's certificates outlive it; delete ``security/`` to make new ones."""

_PRIVATE_DIR = 0o700
_PRIVATE_FILE = 0o600


@dataclass(frozen=True)
class SecurityMaterial:
    """Paths of the CA, the broker's key store and the SCRAM users' password files."""

    directory: Path

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.directory / "broker.pem"

    def password_file(self, user: str) -> Path:
        return self.directory / f"{user}.password"

    def password(self, user: str) -> str:
        return self.password_file(user).read_text(encoding="utf-8").strip()

    def exists(self) -> bool:
        files = (self.ca_file, self.keystore, *map(self.password_file, (CLIENT_USER, BROKER_USER)))
        return all(path.is_file() for path in files)

    def client_security(self) -> KafkaSecurity:
        """What a client of this broker needs: the client user, its password, the CA."""
        return KafkaSecurity.sasl_ssl(
            username=CLIENT_USER,
            password=self.password(CLIENT_USER),
            cafile=self.ca_file,
            mechanism=MECHANISM,
        )

    def client_env(self) -> dict[str, str]:
        """The client settings as environment variables; the password by file, never by value."""
        return {
            "METERING_KAFKA_SECURITY_PROTOCOL": LISTENER,
            "METERING_KAFKA_SASL_MECHANISM": MECHANISM,
            "METERING_KAFKA_SASL_USERNAME": CLIENT_USER,
            "METERING_KAFKA_SASL_PASSWORD_FILE": str(self.password_file(CLIENT_USER)),
            "METERING_KAFKA_SSL_CAFILE": str(self.ca_file),
        }


def ensure_material(directory: Path) -> tuple[SecurityMaterial, bool]:
    """The material in ``directory``, generated when absent; True when it was just made."""
    material = SecurityMaterial(directory)
    if material.exists():
        return material, False
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(_PRIVATE_DIR)
    ca_key, ca_cert = _certificate_authority()
    broker_key, broker_cert = _broker_certificate(ca_key, ca_cert)
    write_private(
        material.keystore, _pem_key(broker_key) + _pem_cert(broker_cert) + _pem_cert(ca_cert)
    )
    for user in (CLIENT_USER, BROKER_USER):
        write_private(material.password_file(user), secrets.token_urlsafe(32).encode() + b"\n")
    material.ca_file.write_bytes(_pem_cert(ca_cert))  # public: what clients trust
    return material, True


def prepare(work_dir: Path) -> SecurityMaterial:
    """The material of the broker working in ``work_dir`` (made on its first secure start).

    A storage formatted before the material existed holds no SCRAM users, so no client could
    ever log in: refused, with what to do.
    """
    material, created = ensure_material(work_dir / "security")
    if created and stored_cluster_id(work_dir / "data") is not None:
        raise ServiceUnavailable(
            f"{work_dir / 'data'} was formatted without SCRAM users; wipe it "
            "(`metering kafka down --wipe`) to start the broker with SASL_SSL"
        )
    return material


def broker_properties(
    base: dict[str, str], ports: BrokerPorts, material: SecurityMaterial
) -> dict[str, str]:
    """``base`` with its client listener turned into SASL_SSL (SCRAM-SHA-512) on 127.0.0.1.

    The same listener carries inter-broker traffic, as ``BROKER_USER``; the controller
    listener and everything else in ``base`` are kept.
    """
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{BROKER_USER}" password="{material.password(BROKER_USER)}";'
    )
    prefix = f"listener.name.{LISTENER.lower()}"
    return {
        **base,
        "listeners": f"{LISTENER}://{HOST}:{ports.broker},CONTROLLER://{HOST}:{ports.controller}",
        "advertised.listeners": f"{LISTENER}://{HOST}:{ports.broker}",
        "listener.security.protocol.map": f"{LISTENER}:{LISTENER},CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": LISTENER,
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        f"{prefix}.{MECHANISM.lower()}.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(material.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(material.ca_file),
        "ssl.client.auth": "none",  # clients prove who they are with SCRAM, not certificates
        "ssl.endpoint.identification.algorithm": "https",
    }


def scram_format_args(material: SecurityMaterial) -> list[str]:
    """``StorageTool format`` arguments creating both SCRAM users (secret: use an argfile)."""
    args: list[str] = []
    for user in (CLIENT_USER, BROKER_USER):
        args += ["--add-scram", f"{MECHANISM}=[name={user},password={material.password(user)}]"]
    return args


# -- certificates -----------------------------------------------------------------------------


def _certificate_authority() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "metering local Kafka CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _broker_certificate(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address(HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    # PKCS#8 without encryption: what Kafka's PEM key store reads when no ssl.key.password is set
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_private(path: Path, content: bytes | str) -> None:
    """Write ``content`` to a file only its owner can read (never readable, even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _PRIVATE_FILE)
    os.fchmod(fd, _PRIVATE_FILE)  # an existing file keeps its old mode through os.open
    with os.fdopen(fd, "wb") as handle:
        handle.write(content.encode() if isinstance(content, str) else content)
