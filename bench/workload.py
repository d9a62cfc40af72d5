"""The events a benchmark sends: subscribed accounts and their requests, as wire bytes.

Deterministic by index (no randomness, no clock read here: ``now`` is passed in), valid
against the contracts, and timed in the recent past so the live worker never rejects a
request as "from the future". Accounts alternate ZenMux Pro and Lilac Basic; a request is a
GPT-5.2 chat (5,000 input + 1,000 output tokens, ≈ 0.25 Flow), so a ZenMux account exhausts
its 5-hour window after ≈ 200 of them and the load includes routing and quota outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from schemas import topics
from schemas.base import format_timestamp

Record = tuple[str, bytes, bytes]
"""(topic without prefix, key, value) of one input record."""

MODEL = "openai/gpt-5.2"
REQUEST_S = timedelta(seconds=2)
"""How long each request lasts (started → completed)."""


def account_id(n: int) -> str:
    return f"acct_{n:07d}"


@dataclass(frozen=True)
class Workload:
    """``accounts`` subscribed accounts; requests spread round-robin over them."""

    accounts: int
    now: datetime
    run: str = "b"
    """Tag in every request id: two runs of one process never repeat ids."""

    def subscriptions(self) -> list[Record]:
        """One ``started`` per account, its period running from a day ago for 30 days."""
        since = self.now - timedelta(days=1)
        return [self.started(n, since) for n in range(self.accounts)]

    def started(self, n: int, since: datetime) -> Record:
        zenmux = n % 2 == 0
        value = {
            "schema_version": 1,
            "account_id": account_id(n),
            "type": "started",
            "at": format_timestamp(since),
            "plan_family": "zenmux" if zenmux else "lilac",
            "plan": "pro" if zenmux else "basic",
            "period_start": format_timestamp(since),
            "period_end": format_timestamp(since + timedelta(days=30)),
            "paid_usd": "20" if zenmux else "10",
        }
        return topics.SUBSCRIPTIONS, account_id(n).encode(), orjson.dumps(value)

    def requests(
        self,
        count: int,
        first: int = 0,
        span: timedelta | None = None,
        end: datetime | None = None,
    ) -> list[Record]:
        """Requests ``first … first + count - 1``, completed within ``span`` (a minute)
        before ``end`` (``now``)."""
        span = span or timedelta(minutes=1)
        step = span / max(count, 1)
        start = (end or self.now) - span - REQUEST_S
        return [self.request(first + i, account_id((first + i) % self.accounts), start + i * step)
                for i in range(count)]  # fmt: skip

    def request(self, n: int, account: str, started: datetime) -> Record:
        value = {
            "schema_version": 1,
            "request_id": f"req_{self.run}_{n}",
            "account_id": account,
            "api_key_id": "key_bench",
            "model": MODEL,
            "channel": "api",
            "billing_mode": "subscription",
            "started_at": format_timestamp(started),
            "completed_at": format_timestamp(started + REQUEST_S),
            "status": "ok",
            "usage": {
                "input_tokens": 5000,
                "cached_input_tokens": 0,
                "output_tokens": 1000,
                "images": 0,
            },
        }
        return topics.REQUESTS, account.encode(), orjson.dumps(value)
