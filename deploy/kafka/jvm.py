"""The broker's JVM command lines (format the storage, run the broker) and what its log says.

Both commands share one classpath (``<libs>/*``, expanded by java itself), heap and log4j
configuration; everything they print goes to one ``kafka.log``, which every error names.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deploy.kafka import config, process
from metering.errors import ServiceUnavailable

FORMAT_TIMEOUT_S = 120.0
_VERSION_LINE = re.compile(r"Kafka version: (\S+)")


@dataclass(frozen=True)
class Jvm:
    """How to run a class of the broker's jars."""

    java: str
    libs: Path
    heap: str
    log4j: Path

    def command(self, main_class: str, *args: str) -> list[str]:
        return [
            self.java,
            f"-Xmx{self.heap}",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.log4j}",
            "-cp",
            f"{self.libs}/*",
            main_class,
            *args,
        ]

    def format_storage(self, props: Path, data_dir: Path, log_path: Path) -> None:
        """``StorageTool format``; a formatted ``data_dir`` keeps its cluster id and data.

        The id is passed as ``--cluster-id=…``: a URL-safe id may begin with ``-``, which
        argparse would read as an option after a separate ``-t``.
        """
        cluster_id = config.stored_cluster_id(data_dir) or config.new_cluster_id()
        command = self.command(
            "kafka.tools.StorageTool", "format", "--ignore-formatted",
            f"--cluster-id={cluster_id}", "-c", str(props),
        )  # fmt: skip
        with log_path.open("ab") as out:
            try:
                result = subprocess.run(
                    command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    timeout=FORMAT_TIMEOUT_S, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                raise ServiceUnavailable(
                    f"formatting Kafka storage took over {FORMAT_TIMEOUT_S:.0f}s; see {log_path}"
                ) from None
        if result.returncode != 0:
            raise ServiceUnavailable(
                f"formatting Kafka storage failed (exit {result.returncode}); see {log_path}"
            )

    def spawn_broker(
        self, props: Path, log_path: Path, *, die_with_parent: bool
    ) -> subprocess.Popen[bytes]:
        """``kafka.Kafka`` in a new session (its own process group), output to ``log_path``."""
        command = self.command("kafka.Kafka", str(props))
        if die_with_parent:
            command = [*process.die_with_parent_prefix(), *command]
        with log_path.open("ab") as out:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=props.parent,
                start_new_session=True,
            )


def log_tail(log_path: Path, size: int = 64_000) -> str:
    """The last ``size`` bytes of the log as text ("" when there is no log)."""
    try:
        with log_path.open("rb") as handle:
            handle.seek(max(handle.seek(0, 2) - size, 0))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def logged_version(log_path: Path) -> str | None:
    """The release in the broker's last ``Kafka version: …`` line, if it logged one."""
    found = _VERSION_LINE.findall(log_tail(log_path, 1_000_000))
    return str(found[-1]) if found else None
