"""The cyclic garbage collector paused while an offline fold runs.

A fold of a month keeps a few million objects alive to its end (idempotency records, account
states, ledger entries, the log's records) and makes no reference cycles, so every pass of
the collector over them finds nothing to free; the passes grow with the heap and cost a
tenth of the fold and more of an audit. Reference counting still frees everything else.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection inside the block; the collector's previous state after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
