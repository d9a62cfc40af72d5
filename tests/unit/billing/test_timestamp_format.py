"""``format_timestamp`` writes every instant of every id, fingerprint and output.

Its text is persisted (window ids, quota event ids, fingerprints in the idempotency table), so
the fast (orjson) version must give exactly the strings the original ``strftime`` one gave.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.base import format_timestamp


def reference(value: datetime) -> str:
    """The original implementation, kept here as the oracle."""
    value = value.astimezone(UTC)
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond == 0:
        return base + "Z"
    if value.microsecond % 1000 == 0:
        return f"{base}.{value.microsecond // 1000:03d}Z"
    return f"{base}.{value.microsecond:06d}Z"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2026, 11, 1, tzinfo=UTC), "2026-11-01T00:00:00Z"),
        (datetime(2026, 11, 1, 9, 5, 7, 120_000, tzinfo=UTC), "2026-11-01T09:05:07.120Z"),
        (datetime(2026, 11, 1, 9, 5, 7, 1_000, tzinfo=UTC), "2026-11-01T09:05:07.001Z"),
        (datetime(2026, 11, 1, 9, 5, 7, 1, tzinfo=UTC), "2026-11-01T09:05:07.000001Z"),
        (datetime(2026, 11, 1, 9, 5, 7, 999_999, tzinfo=UTC), "2026-11-01T09:05:07.999999Z"),
        (datetime(2026, 11, 1, 9, 5, 7, 120_500, tzinfo=UTC), "2026-11-01T09:05:07.120500Z"),
        (datetime(999, 3, 4, 5, 6, 7, tzinfo=UTC), "999-03-04T05:06:07Z"),
        (
            datetime(2026, 11, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))),
            "2026-10-31T23:30:00Z",
        ),
        (
            datetime(2026, 12, 31, 23, 59, 59, 500_000, tzinfo=timezone(timedelta(hours=-5))),
            "2027-01-01T04:59:59.500Z",
        ),
    ],
)
def test_an_instant_is_written_in_utc_with_only_the_fraction_it_needs(
    value: datetime, text: str
) -> None:
    assert format_timestamp(value) == text == reference(value)


@given(
    instant=st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
    ),
    fraction=st.sampled_from(["zero", "ms", "us"]),
    offset_minutes=st.integers(min_value=-23 * 60, max_value=23 * 60),
)
def test_the_fast_format_gives_the_original_strings(
    instant: datetime, fraction: str, offset_minutes: int
) -> None:
    micro = {"zero": 0, "ms": instant.microsecond // 1000 * 1000, "us": instant.microsecond}
    value = instant.replace(microsecond=micro[fraction]).astimezone(
        timezone(timedelta(minutes=offset_minutes))
    )
    assert format_timestamp(value) == reference(value)
