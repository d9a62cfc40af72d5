"""``metering simulate``: deterministic gateway traffic, published to Kafka in real time or written
as a ``LOG.jsonl`` that ``metering replay`` reads.

Kafka mode reads ``KAFKA_BOOTSTRAP_SERVERS`` and ``METERING_TOPIC_PREFIX``, creates the
pipeline's topics if absent, and publishes each event to its topic (keyed by account, or model
for discounts) no sooner than ``--speed`` allows. Errors are ``MeteringError`` and become one
line in ``metering.cli.app.main``; the run ends with a summary table.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from billing.catalog import load_catalog
from metering.errors import ConfigError, ServiceUnavailable
from metering.settings import Settings, load_settings
from simulator.clock import instant
from simulator.config import DEFAULT_START, SimulationConfig
from simulator.errors import SimulationConfigError
from simulator.events import Delivery
from simulator.faults import inject
from simulator.pacing import Pacer
from simulator.route_feed import kafka_route_feed
from simulator.routing import RoutingGate
from simulator.sinks import KafkaSink, kafka_publisher, write_log_file
from simulator.stats import SimulationStats
from simulator.traffic import Traffic

app = typer.Typer(help="Simulate gateway traffic: to Kafka (paced), or to a LOG.jsonl.")


@app.callback(invoke_without_command=True)
def simulate(
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 7,
    accounts: Annotated[int, typer.Option(help="Subscribers, across both families.")] = 100,
    rate: Annotated[
        float, typer.Option(help="Requests per second of simulated time, all accounts.")
    ] = 1.0,
    duration: Annotated[
        float, typer.Option(help="Seconds of simulated time in which requests start.")
    ] = 600.0,
    start: Annotated[
        str, typer.Option(help="First simulated instant, RFC 3339 with offset, or 'now'.")
    ] = DEFAULT_START.isoformat().replace("+00:00", "Z"),
    log: Annotated[
        Path | None, typer.Option("--log", help="Write this LOG.jsonl instead of publishing.")
    ] = None,
    duplicate_rate: Annotated[float, typer.Option(help="Share of requests delivered twice.")] = 0.0,
    straggler_rate: Annotated[
        float, typer.Option(help="Share of requests delivered 1-15 minutes late.")
    ] = 0.0,
    malformed_rate: Annotated[
        float, typer.Option(help="Broken payloads injected per request.")
    ] = 0.0,
    payg_share: Annotated[
        float, typer.Option(help="Share of requests in payg billing mode.")
    ] = 0.05,
    zenmux_share: Annotated[
        float, typer.Option(help="Share of accounts on ZenMux (the rest on Lilac).")
    ] = 0.5,
    plan_limits: Annotated[
        bool,
        typer.Option(help="Throttle requests over the plan's RPM / concurrency, as a gateway."),
    ] = True,
    obey_routing: Annotated[
        bool,
        typer.Option(
            help="Kafka mode: read metering.routing before each subscription request; refuse "
            "it when blocked (the worker must be running to route)."
        ),
    ] = False,
    speed: Annotated[
        float | None,
        typer.Option(
            help="Kafka pacing: simulated seconds per wall second; 1 = real time, 0 = as fast "
            "as possible. [default: 1]"
        ),
    ] = None,
    catalog: Annotated[
        Path | None, typer.Option(help="Catalog YAML (default: METERING_CATALOG or shipped).")
    ] = None,
) -> None:
    """Generate the run's events (same options and seed → same events) and deliver them."""
    config = SimulationConfig(
        seed=seed,
        accounts=accounts,
        rate=rate,
        duration=duration,
        start=parse_start(start),
        zenmux_share=zenmux_share,
        payg_share=payg_share,
        duplicate_rate=duplicate_rate,
        straggler_rate=straggler_rate,
        malformed_rate=malformed_rate,
        plan_limits=plan_limits,
    )
    settings = load_settings()
    traffic = Traffic(config, load_catalog(catalog or settings.catalog_path))
    stream = inject(traffic.events(), config)
    stats = SimulationStats()
    began = time.perf_counter()
    interrupted = False
    if log is not None:
        if speed is not None or obey_routing:
            raise SimulationConfigError(
                "--speed and --obey-routing are for publishing to Kafka; --log writes the "
                "whole file at once, with no worker to route"
            )
        write_log_file(stream, log, stats=stats)
        target = str(log)
    else:
        bootstrap = settings.kafka_bootstrap_servers
        if not bootstrap:
            raise ConfigError(
                "KAFKA_BOOTSTRAP_SERVERS is not set: `metering kafka up` prints one "
                "(or pass --log PATH to write a LOG.jsonl instead)"
            )
        pacer = Pacer(config.start_utc, 1.0 if speed is None else speed)
        try:
            asyncio.run(_publish(settings, bootstrap, stream, pacer, stats, obey_routing))
        except KeyboardInterrupt:
            interrupted = True
        target = f"kafka {bootstrap}, topic prefix {settings.topic_prefix!r}"
    elapsed = time.perf_counter() - began
    console = Console()
    console.print(summary_table(traffic, stats, target, elapsed, interrupted, obey_routing))
    offered = sum(traffic.rates())
    if offered < config.rate * 0.999:
        console.print(
            f"note: {config.accounts} accounts can carry only {offered:.3f} of the "
            f"{config.rate:g} requests/s within their plans' limits; add --accounts or pass "
            "--no-plan-limits"
        )


def parse_start(text: str) -> datetime:
    """An RFC 3339 instant with an offset, or ``now`` (the wall clock, to the millisecond)."""
    if text.strip().lower() == "now":
        now = datetime.now(UTC)
        return now.replace(microsecond=now.microsecond // 1000 * 1000)
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SimulationConfigError(
            f"--start {text!r} is not an RFC 3339 instant (e.g. 2026-11-02T09:00:00Z) or 'now'"
        ) from None
    if parsed.tzinfo is None:
        raise SimulationConfigError(f"--start {text!r} needs an offset (e.g. Z or +00:00)")
    return parsed.astimezone(UTC)


async def _publish(
    settings: Settings,
    bootstrap: str,
    stream: Iterable[Delivery],
    pacer: Pacer,
    stats: SimulationStats,
    obey_routing: bool,
) -> None:
    from streams.admin import ensure_topics

    try:
        await ensure_topics(settings, bootstrap)
    except KafkaError as exc:
        raise ServiceUnavailable(f"kafka at {bootstrap}: {type(exc).__name__}: {exc}") from exc
    async with contextlib.AsyncExitStack() as stack:
        gate = None
        if obey_routing:
            feed = await stack.enter_async_context(
                kafka_route_feed(bootstrap, settings.topic_prefix)
            )
            gate = RoutingGate(feed, stats)
        publisher = await stack.enter_async_context(
            kafka_publisher(bootstrap, settings.topic_prefix)
        )
        await KafkaSink(publisher, pacer, gate, stats).run(stream)


def summary_table(
    traffic: Traffic,
    stats: SimulationStats,
    target: str,
    elapsed: float,
    interrupted: bool,
    obey_routing: bool = False,
) -> Table:
    config = traffic.config
    end = instant(config.start_utc, config.duration)
    title = f"simulation {config.tag} (seed {config.seed})" + (
        " — interrupted" if interrupted else ""
    )
    table = Table(title=title, show_header=True)
    table.add_column("section")
    table.add_column("what")
    table.add_column("count", justify="right")
    for kind, count in sorted(stats.by_kind.items()):
        table.add_row("events", kind, str(count))
    table.add_row("events", "total sent", str(stats.sent))
    plans = Counter(f"{a.family}/{a.plan}" for a in traffic.accounts)
    for plan, count in sorted(plans.items()):
        table.add_row("accounts", f"{plan} (at start)", str(count))
    table.add_row("faults", "duplicates", str(stats.duplicates))
    table.add_row("faults", "stragglers", str(stats.stragglers))
    table.add_row("faults", "malformed", str(stats.malformed))
    table.add_row("gateway", "throttled (429, not sent)", str(traffic.throttled))
    table.add_row("gateway", "offered requests/s", f"{sum(traffic.rates()):.3f}")
    if obey_routing:
        table.add_row("gateway", "refused (route blocked)", str(stats.refused))
        table.add_row("gateway", "rerouted (route fallback)", str(stats.rerouted))
        table.add_row("gateway", "leaked (stale subscription view)", str(stats.leaked))
    table.caption = (
        f"simulated {_instant(config.start_utc)} → {_instant(end)} in {elapsed:.2f} s wall time; "
        f"written to {target}"
    )
    return table


def _instant(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
