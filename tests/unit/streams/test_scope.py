"""``applying(event)`` makes Faust see ``event`` as the current one, and only inside the block:
what routes a batched record's table writes to its partition."""

from __future__ import annotations

from dataclasses import dataclass

from faust.streams import current_event

from streams.scope import applying


@dataclass
class Event:
    partition: int


def test_the_event_is_current_inside_the_block_only() -> None:
    first, second = Event(0), Event(1)
    assert current_event() is None
    with applying(first):
        assert current_event() is first
        with applying(second):
            assert current_event() is second
        assert current_event() is first
    assert current_event() is None


def test_no_event_leaves_the_current_one_as_it_is() -> None:
    event = Event(0)
    with applying(event), applying(None):
        assert current_event() is event
