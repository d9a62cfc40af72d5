"""``metering adjust``: give back part of one ledger entry, as a new entry referencing it.

Thin shell over ``metering.corrections``: parse the options (the amount as an exact decimal,
never a float), look the entry up in ClickHouse, publish the adjustment to
``accounts.adjustments``, print the ids. A refusal is one line and exit 1; nothing is sent.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer

from gateway import SyncPublisher
from gateway.errors import PublishFailed
from metering.corrections import Decision, issue_adjustment, parse_amount
from metering.corrections.errors import AdjustmentNotPublished
from metering.corrections.remainder import show
from metering.errors import ConfigError, InputError
from metering.settings import load_settings
from metering.sink.writer import ClickHouseLedgerStore
from metering.warehouse import DEFAULT_DATABASE, connect, release
from schemas import topics
from schemas.adjustments import Adjustment
from schemas.base import format_timestamp

app = typer.Typer(help="Correct one ledger entry with an append-only adjustment.")


@app.callback(invoke_without_command=True)
def adjust_command(
    entry: Annotated[str, typer.Option("--entry", help="entry_id of the charge to adjust.")],
    amount: Annotated[
        str,
        typer.Option(
            "--amount", help="What to give back, a decimal in the entry's unit (Flows or USD)."
        ),
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why (3 to 500 characters).")],
    adjustment_id: Annotated[
        str | None,
        typer.Option("--adjustment-id", help="Idempotency key; default: a new one."),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Effect time, RFC 3339 (default: now). Give it on a retry."),
    ] = None,
    database: Annotated[
        str, typer.Option("--database", help="ClickHouse database of the ledger.")
    ] = DEFAULT_DATABASE,
) -> None:
    """Check what is left of ENTRY in ClickHouse, then publish the adjustment."""
    settings = load_settings()
    bootstrap = settings.kafka_bootstrap_servers
    if not bootstrap:
        raise ConfigError(
            "KAFKA_BOOTSTRAP_SERVERS is not set: the adjustment is published to the broker the "
            "worker reads (e.g. export KAFKA_BOOTSTRAP_SERVERS=$(metering kafka up))"
        )
    value = parse_amount(amount)
    when = _instant(at) if at is not None else datetime.now(UTC)
    key = adjustment_id or f"adj_{uuid.uuid4().hex}"

    def publish(adjustment: Adjustment) -> None:
        retry = f"--adjustment-id {key} --at {format_timestamp(when)}"
        try:
            with SyncPublisher(bootstrap, topic_prefix=settings.topic_prefix) as publisher:
                publisher.publish(adjustment)
        except PublishFailed as exc:
            raise AdjustmentNotPublished(f"{exc}; run it again with {retry}") from exc

    url = settings.ledger_store_url
    try:
        decision = issue_adjustment(
            ClickHouseLedgerStore(connect(url), database),
            publish,
            entry_id=entry,
            amount=value,
            reason=reason,
            adjustment_id=key,
            at=when,
        )
    finally:
        release(url)
    typer.echo(_report(decision, settings.topic_prefix + topics.ADJUSTMENTS))


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--at {text!r} is not an RFC 3339 timestamp") from None
    if value.tzinfo is None:
        raise InputError(f"--at {text!r} has no UTC offset (write e.g. 2026-11-23T10:00:00Z)")
    return value.astimezone(UTC)


def _report(decision: Decision, topic: str) -> str:
    adjustment, left = decision.adjustment, decision.remainder
    if decision.applied:
        return (
            f"adjustment {adjustment.adjustment_id} is already in the ledger as entry "
            f"{decision.entry_id}: nothing published"
        )
    return "\n".join(
        (
            f"adjustment {adjustment.adjustment_id} published to {topic}: gives back "
            f"{show(adjustment.amount)} {left.unit} of {adjustment.entry_id} "
            f"(account {adjustment.account_id}, {show(left.left - adjustment.amount)} "
            f"{left.unit} left after it)",
            f"its ledger entry will be {decision.entry_id}",
            f"to retry safely: --adjustment-id {adjustment.adjustment_id} "
            f"--at {format_timestamp(adjustment.at)}",
        )
    )
