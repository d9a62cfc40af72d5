"""The broker's JVM as an operating-system process: spawn it in its own group, find it, stop it.

The JVM runs in a new session (its own process group), so one signal reaches it and anything
it forks, and a Ctrl-C in the terminal that started a detached broker does not reach it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

BROKER_MAIN_CLASS = b"kafka.Kafka"


def die_with_parent_prefix() -> list[str]:
    """A command prefix asking Linux to SIGTERM the command when its parent thread dies.

    This is what stops the JVM when a test session is killed (``kill -9``, OOM) and ``atexit``
    never runs. ``setpriv`` (util-linux, always on Debian) sets ``PR_SET_PDEATHSIG`` and execs
    the command, keeping its pid; it replaces a ``preexec_fn``, which is unsafe with threads.
    Without ``setpriv`` the prefix is empty and only ``atexit`` and ``stop()`` remain.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def is_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return True
    # The state follows the command name, which is in parentheses and may hold spaces. A zombie
    # leader whose other threads still run (the JVM's main thread exits first) is still alive.
    return stat.rpartition(")")[2].split()[0] != "Z" or threads > 1


def is_broker(pid: int) -> bool:
    """True when ``pid`` is alive and runs ``kafka.Kafka`` (guards against a reused pid)."""
    if not is_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc to look in: trust the pid
    return BROKER_MAIN_CLASS in argv


def wait_gone(pid: int, timeout_s: float, poll_s: float = 0.1) -> bool:
    """Poll until ``pid`` is gone (or a zombie); False when still there after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group ``pgid``; a group already gone is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def stop_group(pgid: int, wait: Callable[[float], bool], grace_s: float = 30.0) -> bool:
    """Stop the process group led by ``pgid``; True when it went on SIGTERM alone.

    1. SIGTERM to the group: the JVM runs its shutdown hooks (controlled shutdown, logs flushed).
    2. ``wait`` up to ``grace_s`` for the leader to exit.
    3. Still there: SIGKILL to the group, and wait again (a killed process cannot refuse).
    """
    # Step 1.
    signal_group(pgid, signal.SIGTERM)
    # Step 2.
    if wait(grace_s):
        return True
    # Step 3.
    signal_group(pgid, signal.SIGKILL)
    wait(10.0)
    return False


def stop_groups(pgids: Sequence[int], grace_s: float = 30.0) -> list[int]:
    """Stop several process groups together; returns those that needed SIGKILL.

    The nodes of a KRaft cluster are stopped this way: SIGTERM to all at once, so no node is
    left last, waiting in its controlled shutdown for a quorum that is already gone.
    1. SIGTERM to every group.
    2. Wait for each leader, all within one ``grace_s``.
    3. SIGKILL the groups still there, and wait for them.
    """
    # Step 1.
    for pgid in pgids:
        signal_group(pgid, signal.SIGTERM)
    # Step 2.
    deadline = time.monotonic() + grace_s
    stubborn = [p for p in pgids if not wait_gone(p, max(deadline - time.monotonic(), 0.0))]
    # Step 3.
    for pgid in stubborn:
        signal_group(pgid, signal.SIGKILL)
        wait_gone(pgid, 10.0)
    return stubborn
