"""The broker's JVM command lines (format the storage, run the broker) and what its log says.

Both commands share one classpath (``<libs>/*``, expanded by java itself), heap and log4j
configuration; everything they print goes to one ``kafka.log``, which every error names.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator, Sequence
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

    def format_storage(
        self,
        props: Path,
        data_dir: Path,
        log_path: Path,
        cluster_id: str | None = None,
        *,
        secret_args: Sequence[str] = (),
    ) -> None:
        """``StorageTool format``; a formatted ``data_dir`` keeps its cluster id and data.

        ``cluster_id``: the one every node of a cluster shares (default: a new one). The id
        is passed as ``--cluster-id=…``: a URL-safe id may begin with ``-``, which argparse
        would read as an option after a separate ``-t``. ``secret_args`` (SCRAM users with
        their passwords) reach the tool through a 0600 ``@argfile`` deleted after the run, so
        no password is ever on a command line (argv is readable by every local user).
        """
        cluster_id = config.stored_cluster_id(data_dir) or cluster_id or config.new_cluster_id()
        words = [
            "kafka.tools.StorageTool", "format", "--ignore-formatted",
            f"--cluster-id={cluster_id}", "-c", str(props), *secret_args,
        ]  # fmt: skip
        self.run_tool(
            words, props.with_name(f".{props.name}.args"), log_path, "formatting Kafka storage"
        )

    def run_tool(self, words: Sequence[str], argfile: Path, log_path: Path, what: str) -> None:
        """Run ``words`` (a main class and its arguments) to completion, output appended to
        ``log_path``. The words reach java through a 0600 ``@argfile`` at ``argfile``, deleted
        after the run: they may hold passwords. ``ServiceUnavailable`` names ``what`` failed."""
        with _argfile(argfile, words) as path, log_path.open("ab") as out:
            command = [*self.command(words[0])[:-1], f"@{path}"]
            try:
                result = subprocess.run(
                    command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    timeout=FORMAT_TIMEOUT_S, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                raise ServiceUnavailable(
                    f"{what} took over {FORMAT_TIMEOUT_S:.0f}s; see {log_path}"
                ) from None
        if result.returncode != 0:
            raise ServiceUnavailable(f"{what} failed (exit {result.returncode}); see {log_path}")

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


@contextlib.contextmanager
def _argfile(path: Path, words: Sequence[str]) -> Iterator[Path]:
    """A java ``@argfile`` holding ``words`` (main class and arguments), readable by its owner."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        for word in words:  # one double-quoted word a line; java unescapes \\ and \"
            handle.write('"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"\n')
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


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
