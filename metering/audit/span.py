"""Which stretch of time an audit covers: a calendar month or any ``[from, to)`` range (UTC)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from metering.errors import InputError

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True)
class AuditSpan:
    """Entries whose ``started_at`` falls in ``[start, end)`` belong to the audited bill.

    ``started_at`` is the instant that fixed the price and the windows of a charge; a
    correction carries its charge's ``started_at``, so it is audited with the charge it
    corrects.
    """

    start: datetime
    end: datetime
    label: str

    def holds(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


def month_span(period: str) -> AuditSpan:
    """``YYYY-MM`` → the calendar month in UTC."""
    match = _MONTH.match(period)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise InputError(f"--period must be YYYY-MM, got {period!r}")
    year, month = int(match.group(1)), int(match.group(2))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return AuditSpan(start, end, period)


def _instant(text: str, flag: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{flag} must be an RFC 3339 time or a date, got {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def range_span(start: str, end: str) -> AuditSpan:
    """``--from``/``--to``: RFC 3339 times or dates (UTC when no offset is given)."""
    lo, hi = _instant(start, "--from"), _instant(end, "--to")
    if hi <= lo:
        raise InputError(f"--to ({end}) must be after --from ({start})")
    return AuditSpan(lo, hi, f"{lo.isoformat()}/{hi.isoformat()}")


def choose_span(period: str | None, start: str | None, end: str | None) -> AuditSpan:
    """Exactly one of ``--period`` or the ``--from``/``--to`` pair."""
    if period is not None and (start is not None or end is not None):
        raise InputError("give either --period or --from/--to, not both")
    if period is not None:
        return month_span(period)
    if start is None or end is None:
        raise InputError("give --period YYYY-MM, or both --from and --to")
    return range_span(start, end)
