"""Simulated time: an offset in seconds from the run's start, as a millisecond UTC instant.

Gateways log times to the millisecond; rounding every offset to whole milliseconds keeps the
serialized events short and the mapping monotone (a later offset is never an earlier instant).
"""

from __future__ import annotations

from datetime import datetime, timedelta


def instant(origin: datetime, seconds: float) -> datetime:
    """``origin`` + ``seconds``, rounded to the millisecond."""
    return origin + timedelta(milliseconds=round(seconds * 1000))


def seconds_between(earlier: datetime, later: datetime) -> float:
    return (later - earlier).total_seconds()
