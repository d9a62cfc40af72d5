"""Which partition a Faust table read or write targets, when records are applied in batches.

Faust routes a table access by the *current event* (a context variable its stream sets while
an agent iterates record by record): a write goes to the changelog partition and RocksDB
database of that event's partition, and a read looks there first. An agent that takes a
batch (``stream.take_events``) runs outside any current event, so Faust refuses its writes
("Cannot modify table key from outside of stream iteration"). The worker therefore applies
each record, and later saves each buffered key, inside ``applying(event)`` of the record that
wrote it: the same partition Faust would have picked record by record.

faust-streaming 0.15 has no public setter for the current event; this sets the same context
variable its ``Stream`` sets (``faust.streams._current_event``, a weak reference to the event).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

from faust import streams as faust_streams


@contextlib.contextmanager
def applying(event: Any) -> Iterator[None]:
    """Table accesses in this block go to ``event``'s partition (``None``: leave as is)."""
    if event is None:
        yield
        return
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)
