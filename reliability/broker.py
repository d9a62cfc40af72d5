"""The run's broker: the one given (KAFKA_BOOTSTRAP_SERVERS, a test fixture), or its own.

Its own broker is a ``LocalKafka`` with a kept work directory and fixed ports, so it can be
restarted mid-run and come back with its data at the address every client already has:
gracefully (SIGTERM: a controlled shutdown) or hard (SIGKILL of the JVM: no shutdown at all,
the log segments are recovered on start).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from deploy.kafka.launcher import LocalKafka
from metering.errors import ConfigError

STARTUP_TIMEOUT_S = 120.0


class Broker:
    """``bootstrap`` of the run's broker; ``restart`` only for a broker the harness owns."""

    def __init__(self, bootstrap: str, own: LocalKafka | None = None) -> None:
        self.bootstrap = bootstrap
        self._own = own

    @classmethod
    def given(cls, bootstrap: str) -> Broker:
        return cls(bootstrap)

    @classmethod
    def started(cls, work_dir: Path) -> Broker:
        """Start a broker of the harness's own, its data in ``work_dir`` (kept)."""
        kafka = LocalKafka.from_settings(work_dir=work_dir, startup_timeout_s=STARTUP_TIMEOUT_S)
        kafka.start()
        return cls(kafka.bootstrap_servers, kafka)

    @property
    def restartable(self) -> bool:
        return self._own is not None

    def restart(self, *, hard: bool) -> None:
        """Stop the broker (SIGTERM, or SIGKILL when ``hard``) and start it again, same data,
        same ports. Blocking, on purpose in the calling thread: the JVM's parent-death signal
        is tied to the thread that started it (deploy/kafka/README.md)."""
        kafka = self._own
        if kafka is None:
            raise ConfigError(
                "a broker restart needs the harness's own broker: leave KAFKA_BOOTSTRAP_SERVERS "
                "unset (or pass no --bootstrap) for this scenario"
            )
        if hard and kafka.pid is not None:
            os.killpg(kafka.pid, signal.SIGKILL)
        kafka.stop()  # graceful: SIGTERM and wait; hard: only reaps the killed JVM
        again = LocalKafka(
            kafka.libs,
            work_dir=kafka.work_dir,
            ports=kafka.ports,
            startup_timeout_s=STARTUP_TIMEOUT_S,
        )
        again.start()
        self._own = again

    def stop(self) -> None:
        if self._own is not None:
            self._own.stop()
