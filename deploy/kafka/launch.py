"""What the single broker and the cluster launchers share: their settings, their work
directory, the JVM they start from, and their use as a context manager.

Each launcher (``deploy.kafka.launcher.LocalKafka``, ``deploy.kafka.cluster.LocalKafkaCluster``)
adds its own start-up (ports, properties, readiness) and stop.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from deploy.kafka import config, jars
from deploy.kafka.jvm import Jvm
from metering.errors import ServiceUnavailable
from metering.settings import Settings, load_settings


class JvmLauncher:
    """Broker JVMs of one Kafka distribution (``libs``), started in one work directory.

    ``work_dir``: by default a temporary directory (``WORK_PREFIX``), removed after a clean
    stop; a given directory is never removed, and its data survives a restart."""

    WORK_PREFIX = "metering-kafka-"
    WHAT = "the local Kafka broker"
    """How start-up errors name what could not run."""

    def __init__(
        self,
        libs: Path,
        *,
        work_dir: Path | None,
        java: str,
        heap: str,
        partitions: int,
        startup_timeout_s: float,
        stop_timeout_s: float,
        die_with_parent: bool,
    ) -> None:
        self.libs = libs
        self.java = java
        self.heap = heap
        self.partitions = partitions
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._die_with_parent = die_with_parent
        self._given_work_dir = work_dir
        self._work_dir: Path | None = None
        self._version: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: object) -> Self:
        """A launcher for ``Settings.kafka_version``, fetching its jars first when needed."""
        settings = settings or load_settings()
        libs = jars.fetch_jars(settings.home, settings.kafka_version)
        return cls(libs, **kwargs)  # type: ignore[arg-type]

    @property
    def version(self) -> str:
        """The version the broker logged (``Kafka version: …``), else its jar's version."""
        return self._version or jars.broker_version(self.libs)

    @property
    def work_dir(self) -> Path:
        if self._work_dir is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._work_dir

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _prepare_jvm(self) -> Jvm:
        """Step 1 of a start: java and the broker jar found, the work directory prepared."""
        java = shutil.which(self.java)
        if java is None:
            raise ServiceUnavailable(
                f"`{self.java}` not found on PATH: install a JDK 17+ to run {self.WHAT}"
            )
        jars.broker_version(self.libs)
        if self._given_work_dir is not None:
            work = self._given_work_dir
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(tempfile.mkdtemp(prefix=self.WORK_PREFIX))
        self._work_dir = work
        (work / "log4j.properties").write_text(config.LOG4J_PROPERTIES)
        return Jvm(java, self.libs, self.heap, work / "log4j.properties")

    def _remove_work_dir(self) -> None:
        """After a clean stop: the temporary work directory goes (a given one stays)."""
        if self._given_work_dir is None and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
