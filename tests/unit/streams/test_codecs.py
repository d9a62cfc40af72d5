"""Every table value survives its changelog round trip exactly."""

from __future__ import annotations

from datetime import timedelta

import orjson

from billing.source import Source
from schemas import topics
from streams.codecs import (
    decode_account,
    decode_seen,
    decode_timeline,
    encode_account,
    encode_seen,
    encode_timeline,
)
from tests.factories import adjustment, at, discount, encode, lifecycle, request, started
from tests.unit.billing.conftest import run_scenario


def test_state_of_a_rich_scenario_round_trips() -> None:
    chats = [request(start=at(i), request_id=f"c{i}") for i in range(200)]
    values = [
        started(),
        started("acct_l", family="lilac", plan="basic", paid="10"),
        lifecycle("fallback_configured", when=at(-5), enabled=True, fallback_key_id="kp"),
        discount("z-ai/glm-4.7", "surplus", at(0)),
        *chats,
        request("acct_l", start=at(3), model="z-ai/glm-4.7"),
        lifecycle("upgraded", "acct_l", when=at(9), plan="pro", paid_usd="20.5"),
        lifecycle("canceled", "acct_l", when=at(days=3)),
        request(start=at(hours=6), duration=timedelta(minutes=2)),
    ]
    run = run_scenario(values)
    assert run.engine is not None
    first = next(e for e in run.ledger if e.account_id == "acct_1")
    refund = adjustment(first.entry_id, "0.1", when=at(300))
    run.engine.process(Source(topics.ADJUSTMENTS, 0, 999), encode(refund))
    for state in run.engine.accounts.values():
        assert decode_account(encode_account(state)) == state
    for seen in run.engine.seen.values():
        assert decode_seen(encode_seen(seen)) == seen
    for timeline in run.engine.discounts.values():
        assert decode_timeline(encode_timeline(timeline)) == timeline
    assert any(s.charge is not None and s.charge.adjusted for s in run.engine.seen.values())


def test_window_ids_are_derived_on_read_and_explicit_ids_are_still_read() -> None:
    # given an account with open windows
    run = run_scenario([started(), request(start=at(1))])
    assert run.engine is not None
    state = run.engine.accounts["acct_1"]
    body = orjson.loads(encode_account(state))

    # then the stored value omits the ids it can derive, and decodes to the same state
    assert [w["id"] for w in body["windows"]] == [None] * len(state.windows)
    assert decode_account(encode_account(state)) == state

    # and a value written with explicit ids (before they were derived) reads the same
    for raw, window in zip(body["windows"], state.windows, strict=True):
        raw["id"] = window.window_id
    assert decode_account(orjson.dumps(body)) == state
