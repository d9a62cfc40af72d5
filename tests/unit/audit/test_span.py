from datetime import UTC, datetime

import pytest

from metering.audit.span import choose_span, month_span, range_span
from metering.errors import InputError


def test_a_month_is_its_calendar_month_in_utc() -> None:
    span = month_span("2026-11")
    assert (span.start, span.end) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert span.holds(datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC))
    assert not span.holds(span.end)


def test_december_ends_at_the_next_new_year() -> None:
    assert month_span("2026-12").end == datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["2026-13", "2026-00", "26-11", "2026/11", "november"])
def test_a_malformed_month_is_refused(bad: str) -> None:
    with pytest.raises(InputError, match="YYYY-MM"):
        month_span(bad)


def test_a_range_takes_dates_or_times_with_offsets() -> None:
    span = range_span("2026-11-02", "2026-11-03T01:00:00+01:00")
    assert span.start == datetime(2026, 11, 2, tzinfo=UTC)
    assert span.end == datetime(2026, 11, 3, tzinfo=UTC)


def test_an_empty_or_reversed_range_is_refused() -> None:
    with pytest.raises(InputError, match="after"):
        range_span("2026-11-03", "2026-11-03")


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [("2026-11", "2026-11-01", None), (None, "2026-11-01", None), (None, None, None)],
)
def test_exactly_one_way_to_name_the_span(
    period: str | None, start: str | None, end: str | None
) -> None:
    with pytest.raises(InputError):
        choose_span(period, start, end)
