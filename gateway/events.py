"""Input events as a gateway sends them: which topic, which key, which bytes.

This module is the one place that decides an input event's topic, from its fields (SPEC's wire
contract): a ``request_id`` makes it a request, a ``supply_state`` a discount change, an
``adjustment_id`` an adjustment, anything else a subscription lifecycle event. Each event is
then validated against that topic's contract (``schemas.topics.CONTRACTS``) before a byte
leaves the process, so a gateway learns of a bad event at once instead of from the DLQ.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Protocol, get_args

import orjson
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from gateway.errors import InvalidEvent
from schemas import topics
from schemas.adjustments import Adjustment
from schemas.base import format_timestamp
from schemas.discounts import DiscountChange
from schemas.requests import GatewayRequest
from schemas.subscriptions import SubscriptionEvent

UNKNOWN_TOPIC: Final = "(no topic)"
"""Named in an ``InvalidEvent`` when the event is too broken to pick its topic."""

INPUT_MODELS: Final[tuple[type[BaseModel], ...]] = (
    GatewayRequest,
    DiscountChange,
    Adjustment,
    *get_args(get_args(SubscriptionEvent)[0]),
)
"""The contract models a gateway (or billing, pricing, ops) may publish."""

Event = BaseModel | Mapping[str, Any] | bytes
"""What ``Publisher.publish`` takes: a contract model, a JSON-ready mapping, or JSON bytes."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A validated event ready to send: topic without prefix, key, value, id for messages."""

    topic: str
    key: bytes
    value: bytes
    event_id: str


def topic_for(fields: Collection[str]) -> str:
    """The input topic of an event with these field names (the rule, in one place)."""
    if "request_id" in fields:
        return topics.REQUESTS
    if "supply_state" in fields:
        return topics.DISCOUNTS
    if "adjustment_id" in fields:
        return topics.ADJUSTMENTS
    return topics.SUBSCRIPTIONS


class _OfAnAccount(Protocol):
    @property
    def account_id(self) -> str: ...


def key_for(model: DiscountChange | _OfAnAccount) -> str:
    """The Kafka key of an input event: the model for a discount, else the account."""
    return model.model if isinstance(model, DiscountChange) else model.account_id


def prepare(event: Event) -> Outgoing:
    """Validate ``event`` against its topic's contract; raise ``InvalidEvent`` if it breaks it."""
    fields, raw = _fields_and_json(event)
    topic = topic_for(fields)
    try:
        model = topics.CONTRACTS[topic].validate_json(raw)
    except ValidationError as exc:
        problems = tuple(
            (".".join(str(part) for part in error["loc"]) or "<event>", error["msg"])
            for error in exc.errors(include_url=False)
        )
        raise InvalidEvent(topic, *problems[0], errors=problems) from exc
    return Outgoing(
        topic, key_for(model).encode(), model.model_dump_json().encode(), _event_id(model)
    )


def _fields_and_json(event: object) -> tuple[Collection[str], bytes]:
    """The event's field names (to pick its topic) and its JSON text (to validate)."""
    if isinstance(event, BaseModel):
        if not isinstance(event, INPUT_MODELS):
            expected = ", ".join(model.__name__ for model in INPUT_MODELS)
            reason = f"{type(event).__name__} is not an input event (expected one of {expected})"
            raise InvalidEvent(UNKNOWN_TOPIC, "<event>", reason)
        try:
            return type(event).model_fields.keys(), event.model_dump_json().encode()
        except PydanticSerializationError as exc:
            topic = topic_for(type(event).model_fields.keys())
            raise InvalidEvent(topic, "<event>", f"cannot be serialised: {exc}") from exc
    if isinstance(event, Mapping):
        try:
            return event.keys(), orjson.dumps(event, default=_json_default)
        except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
            raise InvalidEvent(topic_for(event.keys()), "<event>", str(exc)) from exc
    if isinstance(event, bytes | bytearray | memoryview):
        raw = bytes(event)
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(UNKNOWN_TOPIC, "<event>", f"not valid JSON: {exc}") from exc
        if not isinstance(decoded, dict):
            reason = f"not a JSON object but {type(decoded).__name__}"
            raise InvalidEvent(UNKNOWN_TOPIC, "<event>", reason)
        return decoded.keys(), raw
    reason = (
        f"unsupported event type {type(event).__name__} (a contract model, a mapping or JSON bytes)"
    )
    raise InvalidEvent(UNKNOWN_TOPIC, "<event>", reason)


def _json_default(value: object) -> str:
    """Decimals are written as strings (exact), as the contract reads money."""
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _event_id(model: Any) -> str:
    """How error messages name an event: its idempotency key where it has one."""
    if isinstance(model, GatewayRequest):
        return f"request {model.request_id}"
    if isinstance(model, Adjustment):
        return f"adjustment {model.adjustment_id}"
    if isinstance(model, DiscountChange):
        return f"discount {model.model}@{format_timestamp(model.effective_at)}"
    return f"{model.type} event of {model.account_id} at {format_timestamp(model.at)}"
