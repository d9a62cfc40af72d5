"""One frozen settings model; each field names the environment variable that sets it.

Only shells (CLI, worker, sink, tests) read settings; the billing core never does.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_home() -> Path:
    return Path.home() / ".cache" / "metering"


class Settings(BaseSettings):
    """Runtime configuration. Unset fields take the embedded single-machine defaults."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "METERING_KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="KAFKA_BOOTSTRAP_SERVERS: an external broker; unset = the local launcher.",
    )
    clickhouse_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CLICKHOUSE_URL", "METERING_CLICKHOUSE_URL"),
        description="CLICKHOUSE_URL: chdb:///abs/path (embedded) or http(s)://host:8123 (server).",
    )
    clickhouse_cluster: str = Field(
        default="",
        pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$",
        validation_alias=AliasChoices("METERING_CLICKHOUSE_CLUSTER"),
        description="METERING_CLICKHOUSE_CLUSTER: the ClickHouse cluster (remote_servers) the "
        "migrations target, in their cluster form; empty = one server (or chDB).",
    )
    web_host: str = Field(
        default="127.0.0.1",
        validation_alias=AliasChoices("METERING_WEB_HOST"),
        description="METERING_WEB_HOST: address of the worker's web views and the sink's "
        "/metrics (0.0.0.0 in a container, so Prometheus can scrape them).",
    )
    home: Path = Field(
        default_factory=_default_home,
        validation_alias=AliasChoices("METERING_HOME"),
        description="METERING_HOME: cache and state directory (Kafka jars, chDB data, worker state).",
    )
    topic_prefix: str = Field(
        default="",
        validation_alias=AliasChoices("METERING_TOPIC_PREFIX"),
        description="METERING_TOPIC_PREFIX: prepended to every topic name.",
    )
    partitions: int = Field(
        default=4,
        ge=1,
        validation_alias=AliasChoices("METERING_PARTITIONS"),
        description="METERING_PARTITIONS: partitions of every topic created on start.",
    )
    replication_factor: int | None = Field(
        default=None,
        ge=1,
        validation_alias=AliasChoices("METERING_REPLICATION_FACTOR"),
        description="METERING_REPLICATION_FACTOR: replication of every topic created on start; "
        "unset = from the cluster (1 broker: 1; 3 or more: 3 with min.insync.replicas 2).",
    )
    worker_session_timeout: float = Field(
        default=60.0,
        ge=6.0,
        validation_alias=AliasChoices("METERING_WORKER_SESSION_TIMEOUT"),
        description="METERING_WORKER_SESSION_TIMEOUT: seconds before the group gives a silent "
        "(killed) worker's partitions to the others; Kafka's minimum is 6.",
    )
    catalog_path: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("METERING_CATALOG"),
        description="METERING_CATALOG: catalog YAML; unset = the catalog shipped in billing/catalog.",
    )
    kafka_version: str = Field(
        default="3.9.2",
        validation_alias=AliasChoices("METERING_KAFKA_VERSION"),
        description="METERING_KAFKA_VERSION: Apache Kafka release the local launcher runs.",
    )

    # How Kafka clients authenticate (metering/kafka_security.py turns these into client
    # options). Never read from argv; the password is a SecretStr, shown as '**********'.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        validation_alias=AliasChoices("METERING_KAFKA_SECURITY_PROTOCOL"),
        description="METERING_KAFKA_SECURITY_PROTOCOL: PLAINTEXT or SASL_SSL (SCRAM over TLS).",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = Field(
        default="SCRAM-SHA-512",
        validation_alias=AliasChoices("METERING_KAFKA_SASL_MECHANISM"),
        description="METERING_KAFKA_SASL_MECHANISM: the SCRAM variant of the broker's users.",
    )
    kafka_sasl_username: str | None = Field(
        default=None,
        validation_alias=AliasChoices("METERING_KAFKA_SASL_USERNAME"),
        description="METERING_KAFKA_SASL_USERNAME: the SCRAM user (SASL_SSL only).",
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("METERING_KAFKA_SASL_PASSWORD"),
        description="METERING_KAFKA_SASL_PASSWORD: the SCRAM password (or use the _FILE variable).",
    )
    kafka_sasl_password_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("METERING_KAFKA_SASL_PASSWORD_FILE"),
        description="METERING_KAFKA_SASL_PASSWORD_FILE: a file holding the SCRAM password.",
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("METERING_KAFKA_SSL_CAFILE"),
        description="METERING_KAFKA_SSL_CAFILE: PEM CA(s) to trust; unset = the system's.",
    )

    @property
    def ledger_store_url(self) -> str:
        """The ClickHouse DSN in effect: the configured URL or the embedded chDB store."""
        return self.clickhouse_url or f"chdb://{self.home / 'chdb'}"


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()
