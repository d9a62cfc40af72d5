"""Formatting the KRaft storage with the real StorageTool, for every shape a cluster id takes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deploy.kafka import config, jars
from deploy.kafka.jvm import Jvm
from metering.settings import Settings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("cluster_id", ["-AbCdEfGhIjKlMnOpQrStUw", "q1w2e3r4t5y6u7i8o9p0_A"])
def test_storage_formats_with_any_url_safe_cluster_id(
    cluster_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the broker's jars, java, and a cluster id that may begin with "-"
    java = shutil.which("java")
    assert java is not None, "a JDK 17+ is needed to run the local broker"
    settings = Settings()
    libs = jars.fetch_jars(settings.home, settings.kafka_version)
    monkeypatch.setattr(config, "new_cluster_id", lambda: cluster_id)
    (tmp_path / "log4j.properties").write_text("log4j.rootLogger=WARN, stderr\n")
    props = tmp_path / "server.properties"
    values = config.server_properties(config.pick_ports(), tmp_path / "data")
    props.write_text(config.render_properties(values))

    # when the storage is formatted
    Jvm(java, libs, "256m", tmp_path / "log4j.properties").format_storage(
        props, tmp_path / "data", tmp_path / "kafka.log"
    )

    # then it belongs to that cluster
    assert config.stored_cluster_id(tmp_path / "data") == cluster_id
