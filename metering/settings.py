"""One frozen settings model; each field names the environment variable that sets it.

Only shells (CLI, worker, sink, tests) read settings; the billing core never does.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
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
    replication_factor: int = Field(
        default=1,
        ge=1,
        validation_alias=AliasChoices("METERING_REPLICATION_FACTOR"),
        description="METERING_REPLICATION_FACTOR: replication of every topic created on start.",
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

    @property
    def ledger_store_url(self) -> str:
        """The ClickHouse DSN in effect: the configured URL or the embedded chDB store."""
        return self.clickhouse_url or f"chdb://{self.home / 'chdb'}"


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()
