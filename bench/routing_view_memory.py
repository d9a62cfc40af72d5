"""Memory of the gateway's routing view per account, measured with tracemalloc.

Run from the repository root:

    .venv/bin/python -m bench.routing_view_memory [--accounts 100000]

Fills a ``RoutingView`` with synthetic accounts through ``RoutingView.ingest`` (the decode +
apply step its tail loop runs for every consumed record; no Kafka needed), and prints the bytes
retained per account next to a baseline, a plain dict ``account_id -> raw JSON bytes`` (what a
gateway would hold if it kept the records as read), and next to keeping the decoded pydantic
models (the alternative the view does not use). Each structure is built from scratch with
tracing on, its inputs dropped as it goes, so only what it retains is counted.
"""

from __future__ import annotations

import argparse
import gc
import platform
import tracemalloc
from collections.abc import Callable
from typing import Any

import pydantic

from gateway.routing_view import RoutingView
from schemas import topics

_FALLBACK = (
    b'{"schema_version":1,"account_id":"%s","route":"fallback","fallback_key_id":"key_payg_%08d",'
    b'"until":"2026-11-23T15:00:00.120Z","reason":"exhausted","seq":%d,"at":"2026-11-23T10:00:04.900Z"}'
)
_BLOCKED = (
    b'{"schema_version":1,"account_id":"%s","route":"blocked","fallback_key_id":null,'
    b'"until":"2026-11-30T10:00:00Z","reason":"exhausted","seq":%d,"at":"2026-11-23T10:00:04.900Z"}'
)
_SUBSCRIPTION = (
    b'{"schema_version":1,"account_id":"%s","route":"subscription","fallback_key_id":null,'
    b'"until":null,"reason":"reset","seq":%d,"at":"2026-11-23T15:00:00.120Z"}'
)


def account_id(n: int) -> str:
    return f"acct_{n:08d}"


def record(n: int) -> bytes:
    """One synthetic routing record: a third each on fallback, blocked and subscription."""
    account = account_id(n).encode()
    seq = n % 500 + 1
    if n % 3 == 0:
        return _FALLBACK % (account, n, seq)
    if n % 3 == 1:
        return _BLOCKED % (account, seq)
    return _SUBSCRIPTION % (account, seq)


def retained_bytes(build: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes still allocated after ``build()`` returned (and garbage was collected)."""
    gc.collect()
    tracemalloc.start()
    try:
        built = build()
        gc.collect()
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return current, built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    count = parser.parse_args().accounts

    def baseline() -> dict[str, bytes]:
        return {account_id(n): record(n) for n in range(count)}

    view = RoutingView("unused:9092")  # never started: only its store is filled

    def fill_view() -> RoutingView:
        for n in range(count):
            if view.ingest(record(n)) is None:
                raise SystemExit(f"record {n} was not accepted: {record(n)!r}")
        return view

    decode = topics.CONTRACTS[topics.ROUTING].validate_json

    def models() -> dict[str, Any]:
        return {account_id(n): decode(record(n)) for n in range(count)}

    raw_bytes, raw = retained_bytes(baseline)
    view_bytes, filled = retained_bytes(fill_view)
    model_bytes, kept = retained_bytes(models)
    assert len(raw) == len(filled) == len(kept) == count
    assert filled.route(account_id(0)) == kept[account_id(0)]

    print(f"{count:,} accounts; Python {platform.python_version()}, pydantic {pydantic.VERSION}")
    print(f"{'structure':<46}{'bytes/account':>14}{'total MiB':>11}{'× raw JSON':>12}")
    rows = [
        ("dict account_id -> raw JSON bytes (baseline)", raw_bytes),
        ("RoutingView (slotted _Route per account)", view_bytes),
        ("dict account_id -> RoutingState model", model_bytes),
    ]
    for name, total in rows:
        print(f"{name:<46}{total / count:>14,.0f}{total / 2**20:>11,.1f}{total / raw_bytes:>12.2f}")


if __name__ == "__main__":
    main()
