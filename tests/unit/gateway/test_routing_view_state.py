"""The routing view's per-record step: highest seq wins, stale and bad records change nothing.

These drive the exact step the tail loop runs per consumed record (``receive``), without Kafka;
tests/integration/test_gateway.py runs the loop itself against the real broker.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from gateway import RoutingView, RoutingViewNotReady
from schemas.routing import RoutingState
from tests.factories import at


def state(account: str, seq: int, route: str = "fallback", **fields: Any) -> RoutingState:
    values: dict[str, Any] = {
        "schema_version": 1,
        "account_id": account,
        "route": route,
        "fallback_key_id": "key_fb" if route == "fallback" else None,
        "until": at(hours=5) if route != "subscription" else None,
        "reason": "exhausted" if route != "subscription" else "reset",
        "seq": seq,
        "at": at(minutes=seq),
        **fields,
    }
    return RoutingState.model_validate(values)


def raw(account: str, seq: int, route: str = "fallback", **fields: Any) -> bytes:
    return state(account, seq, route, **fields).model_dump_json().encode()


class Recorder:
    """An ``on_change`` callback that records what it was given, and can be made to raise."""

    def __init__(self, raise_on: set[int] | None = None) -> None:
        self.seen: list[tuple[str, int]] = []
        self.raise_on = raise_on or set()

    async def __call__(self, changed: RoutingState) -> None:
        self.seen.append((changed.account_id, changed.seq))
        if changed.seq in self.raise_on:
            raise RuntimeError(f"callback broke on seq {changed.seq}")


def view(on_change: Recorder | None = None) -> RoutingView:
    return RoutingView("unused:9092", topic_prefix="p-", on_change=on_change)


@pytest.mark.parametrize(
    ("arrivals", "kept"),
    [
        ([1, 2, 3], 3),
        ([3, 1, 2], 3),
        ([1, 5, 4, 6], 6),
        ([2, 2], 2),
        ([7], 7),
    ],
)
async def test_the_highest_seq_is_kept_whatever_the_arrival_order(
    arrivals: list[int], kept: int
) -> None:
    # given an empty view
    routes = view()

    # when one account's states arrive in this order
    for seq in arrivals:
        await routes.receive(raw("acct_1", seq))

    # then the route answered is the one with the highest seq
    answered = routes.route("acct_1")
    assert answered is not None
    assert answered.seq == kept
    assert answered == state("acct_1", kept)


async def test_a_stale_or_equal_seq_changes_nothing_and_fires_no_callback() -> None:
    # given a view whose account is on seq 5 (fallback)
    recorder = Recorder()
    routes = view(recorder)
    assert await routes.receive(raw("acct_1", 5, "fallback"))

    # when a lower seq and an equal seq with other content arrive (re-deliveries)
    lower = await routes.receive(raw("acct_1", 4, "subscription"))
    equal = await routes.receive(raw("acct_1", 5, "blocked"))

    # then both are refused, the route is still seq 5's, and only seq 5 was announced
    assert (lower, equal) == (False, False)
    assert routes.route("acct_1") == state("acct_1", 5, "fallback")
    assert recorder.seen == [("acct_1", 5)]


async def test_the_callback_fires_once_per_accepted_change_in_order() -> None:
    # given a view with a recording callback
    recorder = Recorder()
    routes = view(recorder)

    # when records of two accounts arrive, some of them stale
    for account, seq in [("a", 1), ("b", 1), ("a", 2), ("a", 1), ("b", 3), ("b", 2), ("a", 2)]:
        await routes.receive(raw(account, seq))

    # then exactly the accepted changes were announced, in arrival order
    assert recorder.seen == [("a", 1), ("b", 1), ("a", 2), ("b", 3)]
    assert len(routes) == 2


async def test_a_raising_callback_is_logged_and_the_view_keeps_applying(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a callback that raises on seq 1
    recorder = Recorder(raise_on={1})
    routes = view(recorder)

    # when seq 1 and then seq 2 arrive
    with caplog.at_level(logging.ERROR, logger="gateway.routing_view"):
        first = await routes.receive(raw("acct_1", 1))
        second = await routes.receive(raw("acct_1", 2, "subscription"))

    # then both were applied and announced, and the failure was logged with its account
    assert (first, second) == (True, True)
    assert recorder.seen == [("acct_1", 1), ("acct_1", 2)]
    route = routes.route("acct_1")
    assert route is not None and route.route == "subscription"
    assert "on_change failed for acct_1 (seq 1)" in caplog.text
    assert "callback broke on seq 1" in caplog.text


@pytest.mark.parametrize(
    ("value", "logged"),
    [
        (None, "tombstone skipped"),
        (b"{not json", "not a RoutingState"),
        (b'{"schema_version": 1, "account_id": "acct_1"}', "not a RoutingState, skipped: route"),
        (raw("acct_1", 9)[:-1] + b', "extra": 1}', "not a RoutingState, skipped: extra"),
        (b"\xff\xfe", "not a RoutingState"),
    ],
    ids=["tombstone", "not json", "missing fields", "unknown field", "not utf-8"],
)
async def test_tombstones_and_undecodable_values_are_logged_and_skipped(
    value: bytes | None, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    # given a view holding seq 1 of an account
    recorder = Recorder()
    routes = view(recorder)
    await routes.receive(raw("acct_1", 1))

    # when a value that is not a routing state arrives
    with caplog.at_level(logging.WARNING, logger="gateway.routing_view"):
        accepted = await routes.receive(value, origin="p-metering.routing[0]@7")

    # then it is skipped with a warning naming where it was, and nothing else changed
    assert accepted is False
    assert logged in caplog.text
    assert "p-metering.routing[0]@7" in caplog.text
    assert routes.route("acct_1") == state("acct_1", 1)
    assert recorder.seen == [("acct_1", 1)]


async def test_a_route_round_trips_every_field_and_unknown_accounts_have_none() -> None:
    # given states with and without a fallback key and an end time
    blocked = state("acct_b", 3, "blocked", until=at(days=7), reason="period_ended")
    normal = state("acct_s", 1, "subscription")
    routes = view()

    # when they are applied
    assert routes.apply(blocked) and routes.apply(normal)

    # then route() gives back models equal to them, field for field, and None for others
    assert routes.route("acct_b") == blocked
    assert routes.route("acct_s") == normal
    assert routes.route("acct_b").model_dump_json() == blocked.model_dump_json()  # type: ignore[union-attr]
    assert routes.route("acct_unknown") is None


async def test_routes_is_a_snapshot_that_later_changes_do_not_alter() -> None:
    # given a view with two accounts, and a snapshot of it
    routes = view()
    routes.apply(state("a", 1))
    routes.apply(state("b", 1))
    snapshot = routes.routes()

    # when one account changes and a third appears
    routes.apply(state("a", 2, "subscription"))
    routes.apply(state("c", 1))

    # then the snapshot still shows the old state, the view the new one
    assert dict(snapshot) == {"a": state("a", 1), "b": state("b", 1)}
    assert len(snapshot) == 2
    assert len(routes) == 3
    assert routes.routes()["a"] == state("a", 2, "subscription")


async def test_a_view_that_was_never_started_is_not_ready() -> None:
    # given a view that was not started
    routes = view()

    # when a caller waits for it, then it is told so, as a TimeoutError too
    assert not routes.ready
    with pytest.raises(RoutingViewNotReady, match=r"p-metering\.routing: not caught up") as late:
        await routes.wait_ready(timeout=0.01)
    assert isinstance(late.value, TimeoutError)
    assert "not started" in str(late.value)
