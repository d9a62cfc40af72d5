"""``gateway.requests``: one event per request a gateway served, keyed by ``account_id``."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import model_validator

from schemas.base import Contract, Count, Identifier, ModelSlug, Timestamp

Channel = Literal["api", "studio"]
BillingMode = Literal["subscription", "payg"]
RequestStatus = Literal["ok", "error", "canceled"]


class Usage(Contract):
    """What the request consumed. Cached input tokens are counted apart from input tokens."""

    input_tokens: Count
    cached_input_tokens: Count = 0
    output_tokens: Count
    images: Count = 0


class GatewayRequest(Contract):
    """A served LLM request. ``request_id`` is the idempotency key."""

    schema_version: Literal[1]
    request_id: Identifier
    account_id: Identifier
    api_key_id: Identifier
    model: ModelSlug
    channel: Channel
    billing_mode: BillingMode
    started_at: Timestamp
    completed_at: Timestamp
    status: RequestStatus
    usage: Usage

    @model_validator(mode="after")
    def _completes_after_start(self) -> Self:
        if self.completed_at < self.started_at:
            raise ValueError("completed_at is before started_at")
        return self
