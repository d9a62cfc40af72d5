"""``metering rebuild`` migrates the store in the form ``METERING_CLICKHOUSE_CLUSTER`` names,
as ``metering store migrate`` does (the runbook's cluster step relies on it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from metering.cli import rebuild as rebuild_cli
from metering.settings import load_settings


class _Stop(Exception):
    """Ends the command once the rebuild was called: nothing is read or written."""


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")  # never connected to
    monkeypatch.setenv("CLICKHOUSE_URL", "http://127.0.0.1:9")
    load_settings.cache_clear()
    yield monkeypatch
    load_settings.cache_clear()


@pytest.mark.parametrize("cluster", ["metering", ""])
def test_the_rebuild_passes_the_cluster_setting_to_its_migration(
    settings_env: pytest.MonkeyPatch, cluster: str
) -> None:
    settings_env.setenv("METERING_CLICKHOUSE_CLUSTER", cluster)
    called: dict[str, Any] = {}

    async def rebuild(*args: Any, **kwargs: Any) -> Any:
        called.update(kwargs)
        raise _Stop

    settings_env.setattr(rebuild_cli, "connect", lambda url: object())
    settings_env.setattr(rebuild_cli, "release", lambda url: None)
    settings_env.setattr(rebuild_cli, "rebuild", rebuild)

    result = CliRunner().invoke(rebuild_cli.app, ["-q"])

    assert isinstance(result.exception, _Stop), result.output
    assert called["cluster"] == cluster
