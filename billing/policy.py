"""The core's tunable limits, passed in by the shell (the core never reads the environment)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class Policy:
    """``dedup_horizon``: how long a ``request_id`` is remembered (SPEC: ≥ 35 days); requests
    that started longer ago than that cannot be charged safely and go to the DLQ.
    ``window_retention``: how long a reset 5h/7d window is kept for stragglers; an older
    straggler is still charged, to its billing period only."""

    dedup_horizon: timedelta = timedelta(days=40)
    window_retention: timedelta = timedelta(days=8)
    future_tolerance: timedelta = timedelta(minutes=5)
    max_payload_bytes: int = 64 * 1024
