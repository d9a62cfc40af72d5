"""Building blocks shared by every topic's contract: the strict base model and field types.

Why strict: a billing pipeline must reject what it does not understand instead of coercing
it (``"5"`` is not a token count, ``1.5e400`` is not money, a naive time is not UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Self

import orjson
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer


class Contract(BaseModel):
    """Frozen, strict, closed: unknown fields and wrong types are errors, never coerced."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    @classmethod
    def trusted(cls, values: dict[str, Any]) -> Self:
        """An instance of values the core computed from inputs it already validated, every
        field given, each of its validated type: what ``model_construct`` does, without its
        per-field loop. The core builds a ledger entry per request, and validating one again
        cost more than computing it. Never for input: records from outside are validated
        (``billing.intake``); tests check every output validates back from its JSON."""
        model = cls.__new__(cls)
        _set(model, "__dict__", values)
        _set(model, "__pydantic_fields_set__", set(values))
        _set(model, "__pydantic_extra__", None)
        _set(model, "__pydantic_private__", None)
        return model


_set = object.__setattr__
"""Sets an attribute of a frozen model, as pydantic's own ``model_construct`` does."""


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


@lru_cache(maxsize=8192)
def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``; fractional digits only as many as needed (ms or µs).

    It runs for every timestamp of every fingerprint, id and output, and a request's two
    instants are written several times (its fingerprint, its entry, its window's id): hence
    the cache (equal instants give the same text whatever their offset) and orjson's C
    writer, half the cost of ``isoformat``. In UTC it writes ``Z``, the fraction only when
    there is one and then all six digits: cut to three when the rest are zeros. The text is
    persisted (window ids, fingerprints), so it stays exactly what ``strftime`` wrote,
    including its unpadded years before 1000.
    """
    value = value.astimezone(UTC)
    text = orjson.dumps(value, option=orjson.OPT_UTC_Z).decode()
    micro = value.microsecond
    text = text[1:-5] + "Z" if micro and micro % 1000 == 0 else text[1:-1]
    return text if value.year >= 1000 else text.lstrip("0")


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
