"""``metering discount set``: publish a model's live supply state (Lilac discount).

The change is validated against the ``catalog.discounts`` contract and the catalog (a model the
catalog does not price would only be dead-lettered by the worker) before a byte is sent, then
published keyed by model through the gateway SDK. A refusal is one line and exit 1.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer
from pydantic import ValidationError

from billing.catalog import load_catalog
from gateway import SyncPublisher
from metering.errors import ConfigError, InputError
from metering.settings import load_settings
from schemas import topics
from schemas.base import format_timestamp
from schemas.discounts import DiscountChange

app = typer.Typer(help="Live Lilac discounts (catalog.discounts).", no_args_is_help=True)


@app.callback()
def discount_group() -> None:
    """Live Lilac discounts (catalog.discounts): one command a change."""


_OPTIONS = {"model": "--model", "supply_state": "--state", "effective_at": "--at"}
_HINTS = {"effective_at": " (RFC 3339 with an offset, e.g. 2026-11-23T10:00:00Z)"}


@app.command("set")
def set_command(
    model: Annotated[str, typer.Option("--model", help="Model slug, as the catalog names it.")],
    state: Annotated[
        str, typer.Option("--state", help="Supply state: low, medium, high or surplus.")
    ],
    at: Annotated[
        str | None,
        typer.Option("--at", help="Effective from, RFC 3339 with an offset (default: now)."),
    ] = None,
    catalog: Annotated[
        Path | None, typer.Option(help="Catalog YAML (default: METERING_CATALOG or shipped).")
    ] = None,
) -> None:
    """Publish MODEL's supply state, effective for requests starting at or after --at."""
    settings = load_settings()
    if not settings.kafka_bootstrap_servers:
        raise ConfigError(
            "KAFKA_BOOTSTRAP_SERVERS is not set: the discount is published to the broker the "
            "worker reads (e.g. export KAFKA_BOOTSTRAP_SERVERS=$(metering kafka up))"
        )
    change = _change(model, state, at)
    loaded = load_catalog(catalog or settings.catalog_path)
    version = loaded.at(change.effective_at) or loaded.latest
    if change.model not in version.models:
        raise InputError(
            f"--model {model}: not in catalog version {version.version} ({loaded.source})"
        )
    with SyncPublisher(
        settings.kafka_bootstrap_servers, topic_prefix=settings.topic_prefix
    ) as publisher:
        publisher.publish(change)
    typer.echo(
        f"discount published to {settings.topic_prefix}{topics.DISCOUNTS}: {change.model} "
        f"{change.supply_state} from {format_timestamp(change.effective_at)}"
    )


def _change(model: str, state: str, at: str | None) -> DiscountChange:
    """The validated change; ``InputError`` names the option that breaks the contract."""
    try:
        return DiscountChange.model_validate_json(  # as the worker reads it off the topic
            orjson.dumps(
                {
                    "schema_version": 1,
                    "model": model,
                    "supply_state": state,
                    "effective_at": at if at is not None else datetime.now(UTC),
                }
            )
        )
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = str(error["loc"][0]) if error["loc"] else "<change>"
        given = f" {error['input']!r}" if isinstance(error["input"], str) else ""
        raise InputError(
            f"{_OPTIONS.get(field, field)}{given}: {error['msg']}{_HINTS.get(field, '')}"
        ) from None
