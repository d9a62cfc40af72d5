"""``LocalKafka``: a real Apache Kafka broker (single-node KRaft) in a child JVM, without Docker.

For tests and local runs: free loopback ports, a throw-away work directory, a readiness wait on
a metadata request, and a stop that leaves no JVM behind (SIGTERM, then SIGKILL; also on
interpreter exit through ``atexit``, and on a killed parent through ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import atexit
import logging
import subprocess
import time
from pathlib import Path

from deploy.kafka import config, process, security
from deploy.kafka.jvm import log_tail, logged_version
from deploy.kafka.launch import JvmLauncher
from deploy.kafka.probe import broker_answers
from deploy.kafka.state import BrokerState
from metering.errors import ServiceUnavailable
from metering.kafka_security import KafkaSecurity

log = logging.getLogger(__name__)

_BIND_FAILED = "Address already in use"


class LocalKafka(JvmLauncher):
    """One broker process. ``with LocalKafka(libs) as kafka: kafka.bootstrap_servers``.

    ``work_dir`` holds ``server.properties``, ``log4j.properties``, ``data/`` and ``kafka.log``;
    by default a temporary directory, removed after a clean stop (kept when start-up failed,
    so the log the error names is still there). A given directory is never removed, and its
    data survives a restart.
    """

    def __init__(
        self,
        libs: Path,
        *,
        work_dir: Path | None = None,
        java: str = "java",
        heap: str = "512m",
        partitions: int = 1,
        startup_timeout_s: float = 60.0,
        stop_timeout_s: float = 30.0,
        die_with_parent: bool = True,
        sasl_ssl: bool = False,
        ports: config.BrokerPorts | None = None,
    ) -> None:
        super().__init__(
            libs, work_dir=work_dir, java=java, heap=heap, partitions=partitions,
            startup_timeout_s=startup_timeout_s, stop_timeout_s=stop_timeout_s,
            die_with_parent=die_with_parent,
        )  # fmt: skip
        self._proc: subprocess.Popen[bytes] | None = None
        self._ports: config.BrokerPorts | None = None
        # Fixed ports let a restart (same work_dir) come back at the address clients know.
        self._fixed_ports = ports
        self.sasl_ssl = (
            sasl_ssl  # client listener SASL_SSL/SCRAM-SHA-512 (deploy/kafka/security.py)
        )
        self._material: security.SecurityMaterial | None = None

    # -- what a caller reads --------------------------------------------------------------

    @property
    def ports(self) -> config.BrokerPorts:
        if self._ports is None:
            raise RuntimeError("LocalKafka is not started")
        return self._ports

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>`` of the running broker."""
        return self.ports.bootstrap_servers

    @property
    def log_path(self) -> Path:
        return self.work_dir / "kafka.log"

    @property
    def client_security(self) -> KafkaSecurity:
        """How a client logs in: PLAINTEXT, or the SCRAM client user over TLS with the CA."""
        if self._material is None:
            return KafkaSecurity()
        return self._material.client_security()

    @property
    def security_material(self) -> security.SecurityMaterial | None:
        """The CA, key store and password files of a SASL_SSL broker (None: PLAINTEXT)."""
        return self._material

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> LocalKafka:
        """Start the broker and return once it answers a metadata request.

        1. find java and the broker jar; prepare the work directory;
        2. pick free ports and write ``server.properties``;
        3. format the KRaft storage (skipped when already formatted);
        4. spawn the JVM in its own process group, output to ``kafka.log``;
        5. poll until a metadata request names a broker, the JVM exits, or the time is up;
        6. read the version from the log and register the ``atexit`` stop.
        A port taken between steps 2 and 4 (the only race) is retried once with new ports,
        unless the ports were given (``ports=``: a restart at the same address).
        """
        if self._proc is not None:
            raise RuntimeError("LocalKafka is already started")
        jvm = self._prepare_jvm()  # Step 1.
        work = self.work_dir
        if self.sasl_ssl:
            self._material = security.prepare(work)
        for attempt in (1, 2):
            # Step 2.
            self._ports = self._fixed_ports or config.pick_ports()
            props = work / "server.properties"
            values = config.server_properties(
                self._ports, work / "data", partitions=self.partitions
            )
            if self._material is not None:
                values = security.broker_properties(values, self._ports, self._material)
            security.write_private(props, config.render_properties(values))  # may hold a password
            # Step 3.
            scram = security.scram_format_args(self._material) if self._material else []
            jvm.format_storage(props, work / "data", self.log_path, secret_args=scram)
            # Step 4.
            self._proc = jvm.spawn_broker(
                props, self.log_path, die_with_parent=self._die_with_parent
            )
            # Step 5.
            started = time.monotonic()
            try:
                self._wait_ready()
            except BaseException as exc:  # Ctrl-C included: never leave the JVM behind
                self._kill()
                retry = isinstance(exc, ServiceUnavailable) and attempt == 1
                retry = retry and self._fixed_ports is None  # fixed ports cannot move
                if retry and _BIND_FAILED in log_tail(self.log_path):
                    log.warning("kafka: a port was taken during start-up; retrying")
                    continue
                raise
            break
        # Step 6.
        self._version = logged_version(self.log_path)
        atexit.register(self.stop)
        log.info(
            "kafka: Apache Kafka %s answering at %s after %.1fs (log %s)",
            self.version, self.bootstrap_servers, time.monotonic() - started, self.log_path,
        )  # fmt: skip
        return self

    def stop(self) -> None:
        """Stop the broker (SIGTERM to its group, SIGKILL after ``stop_timeout_s``). Idempotent."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            clean = process.stop_group(proc.pid, lambda t: _wait(proc, t), self.stop_timeout_s)
            if not clean:
                log.warning("kafka: broker ignored SIGTERM for %.0fs, killed", self.stop_timeout_s)
        proc.wait()
        self._remove_work_dir()

    def detach(self) -> BrokerState:
        """Let the broker outlive this process; return what ``stop`` needs to find it later."""
        if self._die_with_parent:
            raise RuntimeError("detach() needs LocalKafka(..., die_with_parent=False)")
        if self._proc is None or self._ports is None:
            raise RuntimeError("LocalKafka is not started")
        atexit.unregister(self.stop)
        state = BrokerState(
            pid=self._proc.pid,
            broker_port=self._ports.broker,
            controller_port=self._ports.controller,
            bootstrap_servers=self.bootstrap_servers,
            version=self.version,
            log_path=str(self.log_path),
            work_dir=str(self.work_dir),
            started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            security_dir=None if self._material is None else str(self._material.directory),
        )
        self._proc = None
        return state

    # -- steps ----------------------------------------------------------------------------

    def _wait_ready(self) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            code = proc.poll()
            if code is not None:
                raise ServiceUnavailable(
                    f"Kafka broker exited with code {code} during start-up; see {self.log_path}"
                )
            remaining = deadline - time.monotonic()
            timeout_s = max(min(remaining, 5.0), 0.5)
            if broker_answers(self.bootstrap_servers, timeout_s, security=self.client_security):
                return
            if time.monotonic() >= deadline:
                raise ServiceUnavailable(
                    f"Kafka broker did not answer at {self.bootstrap_servers} within "
                    f"{self.startup_timeout_s:.0f}s; see {self.log_path}"
                )
            _wait(proc, 0.2)  # the poll interval; returns early if the JVM exits

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            process.stop_group(proc.pid, lambda t: _wait(proc, t), grace_s=10.0)
            proc.wait()


def _wait(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False
    return True
