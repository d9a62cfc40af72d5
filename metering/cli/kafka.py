"""``metering kafka``: the local Apache Kafka broker (``deploy.kafka``) from the command line.

``fetch`` gathers the jars, ``up`` starts a detached broker and records it in
``<METERING_HOME>/kafka/run/state.json``, ``down`` stops it, ``status`` reports on it.
``up --nodes 3`` starts a KRaft cluster instead (``deploy.kafka.cluster``), one state file
per node in ``<METERING_HOME>/kafka/cluster/node-<id>/``; ``down`` and ``status`` cover both.
``copy-topics`` copies the input topics to a new prefix with more partitions, and
``rotate-password`` replaces a SCRAM user's password (both on any broker).
Errors are ``MeteringError`` and become one line in ``metering.cli.app.main``.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from deploy.kafka import jars, process
from deploy.kafka.cluster import PLAINTEXT, LocalKafkaCluster
from deploy.kafka.launcher import LocalKafka
from deploy.kafka.probe import broker_answers, broker_ids, run_sync
from deploy.kafka.scram import rotate_password
from deploy.kafka.security import SecurityMaterial
from deploy.kafka.state import BrokerState, clear_state, read_state, write_state
from metering.cli.progress import progress_bar
from metering.errors import ConfigError, InputError
from metering.kafka_security import KafkaSecurity
from metering.repartition import copy_inputs
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


def cluster_dir(settings: Settings) -> Path:
    """Work directory of the detached cluster: one ``node-<id>/`` per node."""
    return settings.home / "kafka" / "cluster"


def node_state_paths(settings: Settings) -> list[Path]:
    """The state files of the cluster's nodes, in node order."""
    return sorted(cluster_dir(settings).glob("node-*/state.json"), key=_node_id)


def _node_id(path: Path) -> int:
    """The id in ``node-<id>``, the directory of a node's work (or a file in it)."""
    directory = path if path.name.startswith("node-") else path.parent
    return int(directory.name.removeprefix("node-"))


def _recorded(path: Path) -> BrokerState | None:
    """The broker recorded at ``path`` if its process still runs; a stale file is removed."""
    state = read_state(path)
    if state is None:
        return None
    if process.is_broker(state.pid):
        return state
    clear_state(path)
    return None


def _running(settings: Settings) -> BrokerState | None:
    """The recorded single broker if its process still runs."""
    return _recorded(state_path(settings))


def _running_nodes(settings: Settings) -> list[BrokerState]:
    """The recorded cluster nodes whose processes still run."""
    return [state for path in node_state_paths(settings) if (state := _recorded(path))]


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
    nodes: Annotated[
        int,
        typer.Option(
            min=1,
            max=9,
            help="KRaft nodes (each a controller and a broker); with 3 or more, topics get "
            "3 copies and a write needs 2.",
        ),
    ] = 1,
    sasl_ssl: Annotated[
        bool,
        typer.Option(
            "--sasl-ssl",
            help="Clients must log in: SASL_SSL with SCRAM-SHA-512, a CA made for this broker "
            "(single broker only). Prints the METERING_KAFKA_* settings clients need.",
        ),
    ] = False,
) -> None:
    """Start a detached broker (or cluster) and print its bootstrap servers (alone, on stdout)."""
    settings = load_settings()
    current = _running(settings)
    running = [current] if current is not None else _running_nodes(settings)
    if running:
        typer.echo(
            f"kafka: already running at {','.join(s.bootstrap_servers for s in running)} "
            f"(pid {', '.join(str(s.pid) for s in running)}); `metering kafka down` stops it",
            err=True,
        )
        raise SystemExit(1)
    if nodes > 1 and sasl_ssl:
        raise ConfigError("--sasl-ssl starts a single broker: drop --nodes or --sasl-ssl")
    if nodes > 1:
        typer.echo(_up_cluster(settings, nodes, timeout))
        return
    kafka = LocalKafka.from_settings(
        settings,
        work_dir=run_dir(settings),
        die_with_parent=False,
        startup_timeout_s=timeout,
        sasl_ssl=sasl_ssl,
    )
    kafka.start()
    state = kafka.detach()
    write_state(state_path(settings), state)
    typer.echo(
        f"kafka: Apache Kafka {state.version}, pid {state.pid}, log {state.log_path}", err=True
    )
    if kafka.security_material is not None:  # the password by file: never printed
        typer.echo("kafka: clients log in with these settings:", err=True)
        for name, value in kafka.security_material.client_env().items():
            typer.echo(f"export {name}={value}", err=True)
    typer.echo(state.bootstrap_servers)


def _up_cluster(settings: Settings, nodes: int, timeout: float) -> str:
    """Start a detached cluster of ``nodes`` and record each node; returns its bootstrap."""
    work = cluster_dir(settings)
    kept = len(list(work.glob("node-*/data/meta.properties")))
    if kept and kept != nodes:
        raise ConfigError(
            f"the cluster kept in {work} has {kept} nodes: start it with --nodes {kept}, or "
            f"delete it with `metering kafka down --wipe` to start {nodes}"
        )
    cluster = LocalKafkaCluster.from_settings(
        settings, nodes=nodes, work_dir=work, die_with_parent=False, startup_timeout_s=timeout
    )
    cluster.start()
    states = cluster.detach()
    for state in states:
        write_state(Path(state.work_dir) / "state.json", state)
    typer.echo(
        f"kafka: Apache Kafka {cluster.version}, {nodes} KRaft nodes, pids "
        f"{', '.join(str(s.pid) for s in states)}, logs {work}/node-*/kafka.log",
        err=True,
    )
    return cluster.bootstrap_servers


@app.command("down")
def down_command(
    timeout: Annotated[float, typer.Option(help="Seconds to wait after SIGTERM.")] = 30.0,
    wipe: Annotated[bool, typer.Option(help="Also delete the broker's data.")] = False,
) -> None:
    """Stop the detached broker or cluster: SIGTERM to each process group, SIGKILL after the
    timeout."""
    settings = load_settings()
    state = _running(settings)
    nodes = _running_nodes(settings)
    if state is None and not nodes:
        typer.echo("kafka: not running")
    if nodes:
        killed = process.stop_groups([node.pid for node in nodes], grace_s=timeout)
        for path in node_state_paths(settings):
            clear_state(path)
        pids = ", ".join(str(node.pid) for node in nodes)
        typer.echo(
            f"kafka: stopped the cluster, pids {pids}"
            + (f" ({len(killed)} killed after SIGTERM)" if killed else "")
        )
    if state is not None:
        pid = state.pid
        clean = process.stop_group(pid, lambda t: process.wait_gone(pid, t), grace_s=timeout)
        clear_state(state_path(settings))
        typer.echo(f"kafka: stopped pid {pid}" + ("" if clean else " (killed after SIGTERM)"))
    if wipe:
        shutil.rmtree(run_dir(settings) / "data", ignore_errors=True)
        typer.echo(f"kafka: data removed from {run_dir(settings)}")
        for data in cluster_dir(settings).glob("node-*/data"):
            shutil.rmtree(data, ignore_errors=True)
            typer.echo(f"kafka: data removed from {data.parent}")


@app.command("status")
def status_command() -> None:
    """Print running/stopped, bootstrap, version, and whether the broker answers.

    Exit code: 0 running and answering (a cluster: every node registered), 1 running but
    not answering, 3 stopped.
    """
    settings = load_settings()
    state = _running(settings)
    nodes = _running_nodes(settings)
    if state is None and not nodes:
        typer.echo(f"kafka: stopped (Apache Kafka {settings.kafka_version} when started)")
        raise SystemExit(EXIT_STOPPED)
    if state is None:
        _cluster_status(settings, nodes)
        return
    security = (
        KafkaSecurity()
        if state.security_dir is None
        else SecurityMaterial(Path(state.security_dir)).client_security()
    )
    answers = broker_answers(state.bootstrap_servers, timeout_s=5.0, security=security)
    typer.echo(f"kafka: running, pid {state.pid} since {state.started_at}")
    typer.echo(f"  bootstrap: {state.bootstrap_servers}")
    typer.echo(f"  version:   Apache Kafka {state.version}")
    typer.echo(f"  clients:   {security.describe()}")
    typer.echo(f"  answers:   {'yes' if answers else 'no'}")
    typer.echo(f"  log:       {state.log_path}")
    if not answers:
        raise SystemExit(EXIT_NOT_ANSWERING)


def _cluster_status(settings: Settings, nodes: list[BrokerState]) -> None:
    """The cluster's lines of ``status``: exit 1 unless every node is registered."""
    total = len(list(cluster_dir(settings).glob("node-*")))
    bootstrap = ",".join(node.bootstrap_servers for node in nodes)
    registered = run_sync(broker_ids(bootstrap, 5.0, PLAINTEXT))
    typer.echo(
        f"kafka: cluster running, {len(nodes)} of {total} nodes, since {nodes[0].started_at}"
    )
    typer.echo(f"  bootstrap: {bootstrap}")
    typer.echo(f"  version:   Apache Kafka {nodes[0].version}")
    for node in nodes:
        node_id = _node_id(Path(node.work_dir))
        typer.echo(
            f"  node {node_id}:    pid {node.pid}, {node.bootstrap_servers}, registered "
            f"{'yes' if node_id in registered else 'no'}, log {node.log_path}"
        )
    if len(registered) < total:
        raise SystemExit(EXIT_NOT_ANSWERING)


@app.command("copy-topics")
def copy_topics_command(
    to_prefix: Annotated[
        str, typer.Option("--to-prefix", help="Topic prefix of the new deployment.")
    ],
    partitions: Annotated[
        int, typer.Option("--partitions", min=1, help="Partitions of every new topic.")
    ],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Copy the input topics (METERING_TOPIC_PREFIX) to new topics with more partitions.

    Creates every topic of TO_PREFIX with PARTITIONS partitions, copies the four input topics
    (key, value, headers and timestamp of each record, an account's records in order) and
    checks the counts. Refused when the new input topics already hold records.
    """
    settings = load_settings()
    console = Console(stderr=True)
    with progress_bar(console, quiet=quiet) as progress:
        task = progress.add_task("copying the input topics", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        copied = asyncio.run(copy_inputs(settings, to_prefix, partitions, advance))
    table = Table(title=f"input topics copied, {partitions} partitions each")
    for column in ("from", "to"):
        table.add_column(column)
    table.add_column("records", justify="right")
    for row in copied:
        table.add_row(row.source, row.target, f"{row.records:,}")
    Console().print(table)


@app.command("rotate-password")
def rotate_password_command(
    user: Annotated[str, typer.Option("--user", help="The SCRAM user whose password changes.")],
    new_password_file: Annotated[
        Path,
        typer.Option("--new-password-file", help="A file holding the new password (0600)."),
    ],
) -> None:
    """Replace USER's SCRAM password on the brokers (logging in with the METERING_KAFKA_*
    settings), as kafka-configs --alter would; neither password appears on a command line.

    Open connections stay authenticated: write the new password to the clients' password
    file, then restart them one at a time (docs/OPERATIONS.md, "Rotate credentials").
    """
    settings = load_settings()
    bootstrap = settings.kafka_bootstrap_servers
    if not bootstrap:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is not set: the brokers to change")
    try:
        new_password = new_password_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InputError(f"cannot read {new_password_file}: {exc.strerror or exc}") from None
    java = shutil.which("java")
    if java is None:
        raise ConfigError("`java` not found on PATH: Kafka's admin tool needs a JDK 17+")
    libs = jars.fetch_jars(settings.home, settings.kafka_version)
    security = KafkaSecurity.from_settings(settings)
    log_path = rotate_password(java, libs, bootstrap, security, user, new_password)
    typer.echo(
        f"kafka: the {security.mechanism} password of {user} is replaced (log {log_path}); "
        "new connections need it"
    )
