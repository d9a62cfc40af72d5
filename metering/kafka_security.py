"""How this process's Kafka clients authenticate: settings in, client options out, in one place.

Every client of the pipeline (the Faust worker, its continuity re-reader, the ledger sink, the
gateway SDK's publisher and routing view, the replay reader, the simulator, the demo monitor,
topic creation and the broker probe) spreads ``KafkaSecurity.aiokafka_options()`` into its
aiokafka constructor, and the worker passes ``faust_options()`` to ``faust.App``; none of them
builds an SSL context or SASL arguments of its own.

Credentials come from the environment (``METERING_KAFKA_*``, see ``metering/settings.py``) or
a password file, never from a command line: argv is readable by every local user through
``/proc``. The password is held as a ``SecretStr`` until the moment a client is built, so
``repr()`` and logs show ``**********``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from metering.errors import ConfigError
from metering.settings import Settings, load_settings

Protocol = Literal["PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256"]


@dataclass(frozen=True)
class KafkaSecurity:
    """PLAINTEXT (the default, for a loopback-only broker), or SCRAM over TLS."""

    protocol: Protocol = "PLAINTEXT"
    mechanism: Mechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = None
    cafile: Path | None = None

    @classmethod
    def sasl_ssl(
        cls,
        *,
        username: str,
        password: str | SecretStr,
        cafile: Path | None = None,
        mechanism: Mechanism = "SCRAM-SHA-512",
    ) -> KafkaSecurity:
        secret = password if isinstance(password, SecretStr) else SecretStr(password)
        return cls("SASL_SSL", mechanism, username, secret, cafile)

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSecurity:
        """The settings' security; ``ConfigError`` names the variable that is missing or wrong."""
        if settings.kafka_security_protocol == "PLAINTEXT":
            return cls()
        if not settings.kafka_sasl_username:
            raise ConfigError(
                "METERING_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs METERING_KAFKA_SASL_USERNAME"
            )
        if settings.kafka_ssl_cafile is not None and not settings.kafka_ssl_cafile.is_file():
            raise ConfigError(
                f"METERING_KAFKA_SSL_CAFILE={settings.kafka_ssl_cafile}: no such file"
            )
        return cls.sasl_ssl(
            username=settings.kafka_sasl_username,
            password=_password(settings),
            cafile=settings.kafka_ssl_cafile,
            mechanism=settings.kafka_sasl_mechanism,
        )

    @classmethod
    def from_env(cls) -> KafkaSecurity:
        """The security of this process's environment (``load_settings()``)."""
        return cls.from_settings(load_settings())

    def ssl_context(self) -> ssl.SSLContext | None:
        """A verifying TLS context (chain and host name) for SASL_SSL, else None."""
        if self.protocol == "PLAINTEXT":
            return None
        return ssl.create_default_context(cafile=None if self.cafile is None else str(self.cafile))

    def aiokafka_options(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin, client)."""
        if self.protocol == "PLAINTEXT":
            return {"security_protocol": "PLAINTEXT"}
        assert self.password is not None  # sasl_ssl() and from_settings() always set it
        return {
            "security_protocol": "SASL_SSL",
            "ssl_context": self.ssl_context(),
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password.get_secret_value(),
        }

    def faust_options(self) -> dict[str, Any]:
        """Keyword arguments for ``faust.App`` (its consumer, producer and topic creation)."""
        if self.protocol == "PLAINTEXT":
            return {}
        import faust  # here, not at module level: only the worker needs Faust

        assert self.password is not None
        credentials = faust.SASLCredentials(
            username=self.username,
            password=self.password.get_secret_value(),
            ssl_context=self.ssl_context(),
            mechanism=self.mechanism,
        )
        return {"broker_credentials": credentials}

    def java_properties(self) -> dict[str, str]:
        """The same login for Kafka's own (Java) admin tools, as ``--command-config``
        properties: secret, so written only to a file its owner alone can read."""
        if self.protocol == "PLAINTEXT":
            return {"security.protocol": "PLAINTEXT"}
        assert self.password is not None

        def quoted(text: str | None) -> str:
            return '"' + (text or "").replace("\\", "\\\\").replace('"', '\\"') + '"'

        login = "org.apache.kafka.common.security.scram.ScramLoginModule required"
        secret = self.password.get_secret_value()
        properties = {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": self.mechanism,
            "sasl.jaas.config": f"{login} username={quoted(self.username)} "
            f"password={quoted(secret)};",
        }
        if self.cafile is not None:
            properties["ssl.truststore.type"] = "PEM"
            properties["ssl.truststore.location"] = str(self.cafile)
        return properties

    def describe(self) -> str:
        """One line for logs and status output (no secret in it)."""
        if self.protocol == "PLAINTEXT":
            return "PLAINTEXT"
        trust = f"CA {self.cafile}" if self.cafile else "system CAs"
        return f"SASL_SSL {self.mechanism} as {self.username}, {trust}"


def client_options(security: KafkaSecurity | None = None) -> dict[str, Any]:
    """aiokafka options for ``security``, or for this process's environment when None."""
    return (security or KafkaSecurity.from_env()).aiokafka_options()


def _password(settings: Settings) -> SecretStr:
    given, path = settings.kafka_sasl_password, settings.kafka_sasl_password_file
    if given is not None and path is not None:
        raise ConfigError(
            "set METERING_KAFKA_SASL_PASSWORD or METERING_KAFKA_SASL_PASSWORD_FILE, not both"
        )
    if given is not None:
        return given
    if path is None:
        raise ConfigError(
            "METERING_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs METERING_KAFKA_SASL_PASSWORD_FILE "
            "(or METERING_KAFKA_SASL_PASSWORD)"
        )
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"METERING_KAFKA_SASL_PASSWORD_FILE={path}: cannot read it ({exc.strerror})"
        ) from None
    if not text:
        raise ConfigError(f"METERING_KAFKA_SASL_PASSWORD_FILE={path} is empty")
    return SecretStr(text)
