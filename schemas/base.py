"""Building blocks shared by every topic's contract: the strict base model and field types.

Why strict: a billing pipeline must reject what it does not understand instead of coercing
it (``"5"`` is not a token count, ``1.5e400`` is not money, a naive time is not UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer


class Contract(BaseModel):
    """Frozen, strict, closed: unknown fields and wrong types are errors, never coerced."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``; fractional digits only as many as needed (ms or µs)."""
    value = value.astimezone(UTC)
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond == 0:
        return base + "Z"
    if value.microsecond % 1000 == 0:
        return f"{base}.{value.microsecond // 1000:03d}Z"
    return f"{base}.{value.microsecond:06d}Z"


Timestamp = Annotated[
    AwareDatetime,
    Field(description="RFC 3339 timestamp with an offset; normalised to UTC."),
    AfterValidator(_to_utc),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
"""A timezone-aware instant, stored in UTC and written as RFC 3339 ``…Z``."""

Money = Annotated[
    Decimal,
    Field(allow_inf_nan=False, max_digits=38, decimal_places=12),
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
]
"""An exact decimal amount (dollars or Flows): at most 12 fractional digits, never a float."""

NonNegativeMoney = Annotated[Money, Field(ge=0)]
PositiveMoney = Annotated[Money, Field(gt=0)]

Count = Annotated[int, Field(ge=0, le=10**12)]
"""A token or image count: a non-negative integer of plausible size."""

Identifier = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@/\-]*$"),
]
"""An opaque id (request, account, key): printable, no spaces, at most 128 characters."""

ModelSlug = Annotated[
    str,
    Field(min_length=3, max_length=128, pattern=r"^[a-z0-9][a-z0-9._\-]*/[a-z0-9][a-z0-9._\-]*$"),
]
"""A model slug ``provider/model`` as the catalog names it, e.g. ``openai/gpt-5.2``."""
