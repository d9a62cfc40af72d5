"""The processes a run starts, stops, kills and restarts: the billing worker and the sink host.

Each is a real subprocess in its own session (``kill -9`` reaches exactly it). A supervisor
task plays systemd's part: a process that exits without the harness asking is recorded
(code and last log lines) and started again, so the run goes on and the verdict says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from deploy.kafka.config import free_ports
from metering.demo.stack import wait_for_log, worker_process
from metering.errors import ServiceUnavailable

log = logging.getLogger(__name__)

WORKER_START_TIMEOUT_S: Final = 60.0
"""A worker is ready in 3-10 s here; one not ready in a minute hangs in its group join."""
START_ATTEMPTS: Final = 2
SINK_READY: Final = b"sink consuming"
SINK_START_TIMEOUT_S: Final = 120.0
STOP_TIMEOUT_S: Final = 60.0
SUPERVISE_INTERVAL_S: Final = 0.5


@dataclass(frozen=True)
class Exit:
    """A process that ended without the harness asking: which, its code, its last words."""

    process: str
    incarnation: int
    code: int | None
    log_tail: str


@dataclass
class Worker:
    """``metering worker`` (one incarnation at a time; same app id and state directory)."""

    env: dict[str, str]
    log_dir: Path
    store: str = "rocksdb://"
    app_id: str = "chaos"
    incarnations: int = 0
    unexpected: list[Exit] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    """Incarnations that never became ready (stopped and replaced at start)."""
    _proc: subprocess.Popen[bytes] | None = None
    _stack: contextlib.ExitStack | None = None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"worker-{self.incarnations}.log"

    async def start(self) -> None:
        """Start an incarnation and return once Faust logs "Ready". One that hangs in its first
        group join is stopped and started again, once, and recorded in ``hangs``."""
        for attempt in range(1, START_ATTEMPTS + 1):
            self.incarnations += 1
            stack = contextlib.ExitStack()
            context = worker_process(
                self.env,
                free_ports(1)[0],
                self.log_path,
                store=self.store,
                app_id=self.app_id,
                start_timeout_s=WORKER_START_TIMEOUT_S,
            )
            try:
                self._proc = await asyncio.to_thread(stack.enter_context, context)
            except ServiceUnavailable as exc:
                if attempt == START_ATTEMPTS or "did not log" not in str(exc):
                    raise
                self.hangs.append(f"worker-{self.incarnations}.log: not ready in time")
                log.warning("the worker did not become ready; starting another")
                continue
            self._stack = stack
            return

    async def kill(self) -> None:
        """``kill -9`` the incarnation's process group: no handler runs, nothing is flushed."""
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        await self._end()

    async def stop(self) -> int | None:
        """SIGTERM, wait for the exit (SIGKILL after 30 s: ``worker_process``); the exit code."""
        return await self._end()

    async def close(self) -> None:
        """Stop the incarnation if one runs (whatever happened to the run)."""
        if self._proc is not None:
            await self._end()

    async def _end(self) -> int | None:
        proc, stack = self._proc, self._stack
        if proc is None or stack is None:
            raise RuntimeError("the worker is not running")
        self._proc = self._stack = None
        await asyncio.to_thread(stack.close)
        return proc.returncode

    async def revive(self) -> None:
        """If the incarnation exited on its own: record it, start another."""
        proc = self._proc
        if proc is None or proc.poll() is None:
            return
        await self._end()
        tail = self.log_path.read_text(errors="replace")[-1500:]
        self.unexpected.append(Exit("worker", self.incarnations, proc.returncode, tail))
        log.warning("the worker exited on its own (code %s); restarting it", proc.returncode)
        await self.start()


@dataclass
class SinkHost:
    """``python -m reliability sink-host``: the ledger sink with its fault switches."""

    env: dict[str, str]
    log_dir: Path
    dump: Path
    options: list[str] = field(default_factory=list)
    incarnations: int = 0
    unexpected: list[Exit] = field(default_factory=list)
    codes: list[int | None] = field(default_factory=list)
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"sink-{self.incarnations}.log"

    async def start(self, *extra: str) -> None:
        """Start an incarnation (``extra`` options for it only); return once it consumes."""
        self.incarnations += 1
        argv = [sys.executable, "-m", "reliability", "sink-host", "--dump", str(self.dump)]
        with self.log_path.open("wb") as out:
            self._proc = subprocess.Popen(
                [*argv, *self.options, *extra],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        await asyncio.to_thread(
            wait_for_log, self._proc, self.log_path, SINK_READY, SINK_START_TIMEOUT_S
        )

    def signal(self, signum: signal.Signals) -> None:
        """Deliver a fault switch (SIGUSR1: a second consumer joins; SIGUSR2: an outage)."""
        if self._proc is None:
            raise RuntimeError("the sink is not running")
        self._proc.send_signal(signum)

    async def stop(self) -> int | None:
        """SIGTERM: flush, commit, close, dump the ledger; the exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            raise RuntimeError("the sink is not running")
        proc.terminate()
        try:
            code = await asyncio.to_thread(proc.wait, STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = await asyncio.to_thread(proc.wait)
        self.codes.append(code)
        return code

    async def close(self) -> None:
        """Stop the incarnation if one runs (whatever happened to the run)."""
        if self._proc is not None:
            await self.stop()

    async def revive(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is None:
            return
        self._proc = None
        tail = self.log_path.read_text(errors="replace")[-1500:]
        self.unexpected.append(Exit("sink", self.incarnations, proc.returncode, tail))
        log.warning("the sink exited on its own (code %s); restarting it", proc.returncode)
        await self.start()


async def supervise(*processes: Worker | SinkHost) -> None:
    """Until cancelled: restart whichever process exited without being asked to."""
    while True:
        for process in processes:
            await process.revive()
        await asyncio.sleep(SUPERVISE_INTERVAL_S)
