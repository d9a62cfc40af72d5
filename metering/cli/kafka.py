"""``metering kafka``: the local Apache Kafka broker (``deploy.kafka``) from the command line.

``fetch`` gathers the jars, ``up`` starts a detached broker and records it in
``<METERING_HOME>/kafka/run/state.json``, ``down`` stops it, ``status`` reports on it.
Errors are ``MeteringError`` and become one line in ``metering.cli.app.main``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated

import typer

from deploy.kafka import jars, process
from deploy.kafka.launcher import LocalKafka
from deploy.kafka.probe import broker_answers
from deploy.kafka.state import BrokerState, clear_state, read_state, write_state
from metering.settings import Settings, load_settings

app = typer.Typer(
    help="A local Apache Kafka broker (real jars from Maven Central, no Docker).",
    no_args_is_help=True,
)

EXIT_NOT_ANSWERING = 1
EXIT_STOPPED = 3  # as `systemctl status` does for a stopped unit
# SystemExit rather than typer.Exit: the app runs click with standalone_mode=False, where an
# Exit's code is returned, not passed to the shell.


def run_dir(settings: Settings) -> Path:
    """Work directory of the detached broker: properties, ``data/``, ``kafka.log``, state."""
    return settings.home / "kafka" / "run"


def state_path(settings: Settings) -> Path:
    return run_dir(settings) / "state.json"


def _running(settings: Settings) -> BrokerState | None:
    """The recorded broker if its process still runs; a stale state file is removed."""
    state = read_state(state_path(settings))
    if state is None:
        return None
    if process.is_broker(state.pid):
        return state
    clear_state(state_path(settings))
    return None


@app.command("fetch")
def fetch_command() -> None:
    """Gather the broker's jars from Maven Central into the cache (once per version)."""
    settings = load_settings()
    started = time.monotonic()
    libs = jars.fetch_jars(settings.home, settings.kafka_version)
    count = len(list(libs.glob("*.jar")))
    typer.echo(
        f"kafka {jars.broker_version(libs)}: {count} jars in {libs} "
        f"({time.monotonic() - started:.1f}s)"
    )


@app.command("up")
def up_command(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker.")] = 90.0,
) -> None:
    """Start a detached broker and print its bootstrap address (alone, on stdout)."""
    settings = load_settings()
    current = _running(settings)
    if current is not None:
        typer.echo(
            f"kafka: already running at {current.bootstrap_servers} (pid {current.pid}); "
            "`metering kafka down` stops it",
            err=True,
        )
        raise SystemExit(1)
    kafka = LocalKafka.from_settings(
        settings, work_dir=run_dir(settings), die_with_parent=False, startup_timeout_s=timeout
    )
    kafka.start()
    state = kafka.detach()
    write_state(state_path(settings), state)
    typer.echo(
        f"kafka: Apache Kafka {state.version}, pid {state.pid}, log {state.log_path}", err=True
    )
    typer.echo(state.bootstrap_servers)


@app.command("down")
def down_command(
    timeout: Annotated[float, typer.Option(help="Seconds to wait after SIGTERM.")] = 30.0,
    wipe: Annotated[bool, typer.Option(help="Also delete the broker's data.")] = False,
) -> None:
    """Stop the detached broker: SIGTERM to its process group, SIGKILL after the timeout."""
    settings = load_settings()
    state = _running(settings)
    if state is None:
        typer.echo("kafka: not running")
    else:
        pid = state.pid
        clean = process.stop_group(pid, lambda t: process.wait_gone(pid, t), grace_s=timeout)
        clear_state(state_path(settings))
        typer.echo(f"kafka: stopped pid {pid}" + ("" if clean else " (killed after SIGTERM)"))
    if wipe:
        shutil.rmtree(run_dir(settings) / "data", ignore_errors=True)
        typer.echo(f"kafka: data removed from {run_dir(settings)}")


@app.command("status")
def status_command() -> None:
    """Print running/stopped, bootstrap, version, and whether the broker answers.

    Exit code: 0 running and answering, 1 running but not answering, 3 stopped.
    """
    settings = load_settings()
    state = _running(settings)
    if state is None:
        typer.echo(f"kafka: stopped (Apache Kafka {settings.kafka_version} when started)")
        raise SystemExit(EXIT_STOPPED)
    answers = broker_answers(state.bootstrap_servers, timeout_s=5.0)
    typer.echo(f"kafka: running, pid {state.pid} since {state.started_at}")
    typer.echo(f"  bootstrap: {state.bootstrap_servers}")
    typer.echo(f"  version:   Apache Kafka {state.version}")
    typer.echo(f"  answers:   {'yes' if answers else 'no'}")
    typer.echo(f"  log:       {state.log_path}")
    if not answers:
        raise SystemExit(EXIT_NOT_ANSWERING)
