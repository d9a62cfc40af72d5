"""Settings come from the documented variables only (no stray match on HOME, PARTITIONS…)."""

from __future__ import annotations

from pathlib import Path

import pytest

from metering.settings import Settings


def test_defaults_are_the_embedded_single_machine_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "CLICKHOUSE_URL",
        "METERING_HOME",
        "METERING_CLICKHOUSE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", "/somewhere/else")
    monkeypatch.setenv("PARTITIONS", "99")
    settings = Settings()
    assert settings.kafka_bootstrap_servers is None
    assert settings.home == Path("/somewhere/else/.cache/metering")
    assert settings.ledger_store_url == "chdb:///somewhere/else/.cache/metering/chdb"
    assert settings.partitions == 4


def test_documented_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("CLICKHOUSE_URL", "http://ch:8123")
    monkeypatch.setenv("METERING_HOME", "/var/lib/metering")
    monkeypatch.setenv("METERING_PARTITIONS", "12")
    settings = Settings()
    assert settings.kafka_bootstrap_servers == "broker:9092"
    assert settings.ledger_store_url == "http://ch:8123"
    assert settings.home == Path("/var/lib/metering")
    assert settings.partitions == 12
