"""Fuzzing the intake and the fold with arbitrary bytes and spoiled valid events.

Whatever arrives, the core never raises; a record it refuses becomes exactly one dead letter
carrying its bytes (secrets redacted), a reason and its source offset, and changes nothing
else: the fold's other outputs are those of the same log without it, and the next valid
request is still charged. The classes of ``reliability.bad_input`` (the corpus the live
harness sends) are pinned to their dead-letter codes.
"""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from billing.catalog import load_catalog
from billing.engine import Decoded, Engine
from billing.intake import SECRET, redact
from billing.outputs import Emitted
from billing.policy import Policy
from billing.replay import Replay
from billing.routing import derive
from billing.source import Source
from reliability.bad_input import BUILDERS, bad_inputs
from schemas import topics
from schemas.dlq import DeadLetter
from schemas.ledger import LedgerEntry
from schemas.requests import GatewayRequest
from tests.factories import adjustment, at, encode, lifecycle, request, started, topic_for
from tests.unit.billing.conftest import run_scenario

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
"""The ingest instant of every record (what the future-timestamp check judges against)."""
ACCOUNT = "acct_fuzz"
BAD_PARTITION = 1
"""The spoiled record is read from its own partition, so the valid records keep their offsets."""
CATALOG = load_catalog()
LIMIT = Policy().max_payload_bytes
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

Record = tuple[Source, bytes, str | None]


def valid_request(minutes_ago: float, request_id: str) -> dict[str, Any]:
    return request(ACCOUNT, start=NOW - timedelta(minutes=minutes_ago), request_id=request_id)


def base_log() -> list[dict[str, Any]]:
    """A subscription, a request before the spoiled record and one after it."""
    return [
        started(ACCOUNT, when=NOW - timedelta(days=3)),
        valid_request(30, "req_before"),
        valid_request(10, "req_after"),
    ]


def on_partition_zero(values: list[dict[str, Any]]) -> list[Record]:
    return [
        (Source(topic_for(v), 0, offset, NOW), encode(v), ACCOUNT)
        for offset, v in enumerate(values)
    ]


def fold(records: list[Record]) -> list[list[Emitted]]:
    """Each record's outputs (the final tick's go with the last record)."""
    replay = Replay(Engine(CATALOG, accounts={}, seen={}, discounts={}))
    per_record = [list(replay.feed(*record)) for record in records]
    per_record[-1] += list(replay.finish())
    return per_record


def with_spoiled(topic: str, payload: bytes) -> tuple[list[list[Emitted]], list[list[Emitted]]]:
    """(outputs of the base log, outputs with ``payload`` read between the two requests)."""
    base = on_partition_zero(base_log())
    spoiled = (Source(topic, BAD_PARTITION, 7, NOW), payload, ACCOUNT)
    return fold(base), fold([*base[:2], spoiled, base[2]])


def letters_of(outputs: list[Emitted]) -> list[DeadLetter]:
    return [o.value for o in outputs if isinstance(o.value, DeadLetter)]


def assert_kept_whole(letter: DeadLetter, topic: str, payload: bytes) -> None:
    """The dead letter names where the record was read and holds its (redacted) bytes."""
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        topic,
        BAD_PARTITION,
        7,
    )
    assert letter.reason.strip()
    kept = base64.b64decode(letter.payload_b64)
    assert kept == redact(payload[:LIMIT])[0]
    assert letter.payload == kept.decode("utf-8", errors="replace")
    assert SECRET.search(kept) is None  # no secret-looking value survives


def assert_refused_and_nothing_else_changed(topic: str, payload: bytes) -> bool:
    """If the core refuses ``payload``: one dead letter, and the fold's other outputs are
    exactly those without it. Returns whether it was refused (a valid mutation is not)."""
    base, spoiled = with_spoiled(topic, payload)
    letters = letters_of(spoiled[2])
    if not letters:
        return False
    assert len(letters) == 1 and len(spoiled[2]) == 1, "a refused record emits one dead letter"
    assert_kept_whole(letters[0], topic, payload)
    assert [spoiled[0], spoiled[1], spoiled[3]] == base, "a refused record changed the fold"
    return True


def charged_ids(outputs: list[list[Emitted]]) -> list[str]:
    return [o.value.request_id for out in outputs for o in out if isinstance(o.value, LedgerEntry)]


# -- arbitrary bytes ------------------------------------------------------------------------

INPUTS = st.sampled_from([*topics.INPUT_TOPICS, topics.TICKS])


@FUZZ
@given(topic=INPUTS, payload=st.binary(max_size=4096))
def test_arbitrary_bytes_on_any_input_topic_are_one_dead_letter(topic: str, payload: bytes) -> None:
    engine = Engine(CATALOG, accounts={}, seen={}, discounts={})
    assume(not isinstance(engine.decode(Source(topic, BAD_PARTITION, 7, NOW), payload), Decoded))
    assert assert_refused_and_nothing_else_changed(topic, payload)


# -- spoiled valid requests -----------------------------------------------------------------

SECRETS = st.from_regex(r"sk-[A-Za-z0-9][A-Za-z0-9_\-]{7,40}", fullmatch=True)
INSTANTS = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
).map(lambda d: d.isoformat().replace("+00:00", "Z"))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**12, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=200),
    SECRETS,
    INSTANTS,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
FIELDS = (
    "schema_version",
    "request_id",
    "account_id",
    "api_key_id",
    "model",
    "channel",
    "billing_mode",
    "started_at",
    "completed_at",
    "status",
    "usage",
    "usage.input_tokens",
    "usage.cached_input_tokens",
    "usage.output_tokens",
    "usage.images",
    "surprise",
)


@st.composite
def spoiled_requests(draw: st.DrawFn) -> bytes:
    """A valid request with one field replaced, removed or added, optionally byte-damaged."""
    fields = valid_request(20, "req_spoiled")
    path = draw(st.sampled_from(FIELDS)).split(".")
    holder = fields if len(path) == 1 else fields["usage"]
    if draw(st.booleans()) and path[-1] in holder:
        del holder[path[-1]]
    else:
        holder[path[-1]] = draw(JSON_VALUES)
    payload = json.dumps(fields, allow_nan=True).encode("utf-8")  # NaN / Infinity tokens too
    if draw(st.booleans()):
        at = draw(st.integers(min_value=0, max_value=len(payload)))
        payload = payload[:at] + draw(st.binary(min_size=1, max_size=8)) + payload[at:]
    return payload


@FUZZ
@given(payload=spoiled_requests())
def test_a_spoiled_request_is_refused_alone_or_charged_and_the_next_one_is_charged(
    payload: bytes,
) -> None:
    refused = assert_refused_and_nothing_else_changed(topics.REQUESTS, payload)
    _, spoiled = with_spoiled(topics.REQUESTS, payload)
    if not refused:  # a mutation that is still a valid request is charged like any other
        request_id = GatewayRequest.model_validate_json(payload).request_id
        assume(request_id not in ("req_before", "req_after"))  # a re-delivery, not a new one
        assert charged_ids([spoiled[2]]) == [request_id]
    assert charged_ids([spoiled[3]]) == ["req_after"]


@FUZZ
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_every_bad_input_class_is_refused_alone_whatever_the_seed(seed: int) -> None:
    original = GatewayRequest.model_validate_json(encode(valid_request(30, "req_before")))
    for bad in bad_inputs([original], NOW, seed):
        assert assert_refused_and_nothing_else_changed(bad.topic, bad.payload), bad.kind


# -- the named classes, pinned --------------------------------------------------------------

EXPECTED_CODES = {
    "completed_before_started": "invalid",
    "conflicting_duplicate": "conflict",
    "deeply_nested": "invalid",
    "empty": "invalid",
    "far_future": "future_timestamp",
    "far_past": "unknown_model",  # no catalog version was in effect in 1970
    "future_timestamp": "future_timestamp",
    "garbage_adjustment": "invalid",
    "huge_float": "invalid",
    "huge_integer": "invalid",
    "infinity": "invalid",
    "invalid_json": "invalid",
    "invalid_utf8": "invalid",
    "nan": "invalid",
    "negative_count": "invalid",
    "oversized": "oversized",
    "random_bytes": "invalid",
    "secret": "secret",
    "unknown_account": "unknown_account",
    "unknown_model": "unknown_model",
    "wrong_topic": "invalid",
}


def test_the_table_names_every_class() -> None:
    assert set(EXPECTED_CODES) == set(BUILDERS)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_each_bad_input_class_is_dead_lettered_with_its_code(kind: str) -> None:
    original = GatewayRequest.model_validate_json(encode(valid_request(30, "req_before")))
    bad = next(b for b in bad_inputs([original], NOW, seed=7) if b.kind == kind)
    _, spoiled = with_spoiled(bad.topic, bad.payload)
    assert [letter.code for letter in letters_of(spoiled[2])] == [EXPECTED_CODES[kind]]
    assert charged_ids(spoiled) == ["req_before", "req_after"]


def test_an_oversized_payload_keeps_its_first_bytes_up_to_the_limit() -> None:
    payload = bytes(random.Random(3).randbytes(LIMIT * 2))
    _, spoiled = with_spoiled(topics.REQUESTS, payload)
    (letter,) = letters_of(spoiled[2])
    assert letter.code == "oversized"
    assert len(base64.b64decode(letter.payload_b64)) == LIMIT


FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        lifecycle(
            "fallback_configured", ACCOUNT, when=FAR_FUTURE, enabled=True, fallback_key_id="key_9"
        ),
        adjustment("le_unknown", "1.00", account=ACCOUNT, when=FAR_FUTURE),
    ],
    ids=["lifecycle", "adjustment"],
)
def test_a_non_request_input_from_the_far_future_is_refused_alone(value: dict[str, Any]) -> None:
    # a lifecycle event or correction dated far ahead must not move the account's clock
    # there (every later request would then be dead-lettered too_late)
    topic = topic_for(value)
    assert assert_refused_and_nothing_else_changed(topic, encode(value))
    _, spoiled = with_spoiled(topic, encode(value))
    assert [letter.code for letter in letters_of(spoiled[2])] == ["future_timestamp"]


@FUZZ
@given(ahead=st.integers(min_value=0, max_value=int(Policy().future_tolerance.total_seconds())))
def test_a_record_dated_after_its_ingest_time_ticks_no_other_account_ahead(ahead: int) -> None:
    """Live, resets are ticked by the wall clock; a record dated up to the tolerance past its
    ingest time is charged, but must not make the replay restore another account early."""
    heavy = [
        request("acct_a", start=NOW - timedelta(minutes=60 - i), input_tokens=400_000)
        for i in range(0, 30, 3)
    ]
    first = fold(on_partition_zero([started("acct_a", when=NOW - timedelta(days=1)), *heavy]))
    resets_at = next(
        o.value.resets_at
        for out in first
        for o in out
        if o.topic == topics.QUOTA and o.value.type == "exhausted"  # type: ignore[attr-defined]
    )
    ingest = resets_at - timedelta(minutes=1)
    other = request("acct_b", start=ingest - timedelta(seconds=30))
    other["completed_at"] = (ingest + timedelta(seconds=ahead)).isoformat().replace("+00:00", "Z")
    replay = Replay(Engine(CATALOG, accounts={}, seen={}, discounts={}))
    for record in on_partition_zero(
        [started("acct_a", when=NOW - timedelta(days=1)), started("acct_b", when=NOW), *heavy]
    ):
        list(replay.feed(*record))
    outputs = list(replay.feed(Source(topics.REQUESTS, 0, 99, ingest), encode(other), "acct_b"))
    assert {o.key for o in outputs} == {"acct_b"}, "acct_a was restored before its reset"


@FUZZ
@given(
    minute=st.integers(min_value=0, max_value=299),
    tokens=st.integers(min_value=500_000, max_value=2_000_000),
)
def test_a_straggler_into_an_old_window_never_routes_the_account_back_in_time(
    minute: int, tokens: int
) -> None:
    """A window opened at T0, a later one exhausted; a straggler of the first window (which
    may exhaust it, long after its reset) must leave the published route equal to the route
    of the account's windows at its clock — not the route as of the old reset."""
    later = [
        request(
            "acct_1",
            start=at(hours=6, minutes=i),
            input_tokens=400_000,
            output_tokens=100_000,
            request_id=f"b{i}",
        )
        for i in range(0, 40, 2)
    ]
    straggler = request(
        "acct_1",
        start=at(minutes=minute),
        input_tokens=tokens,
        output_tokens=300_000,
        request_id="late",
    )
    run = run_scenario([started(), request(start=at(0), request_id="a0"), *later, straggler])
    assert run.engine is not None
    state = run.engine.accounts["acct_1"]
    assert state.route is not None
    published = (state.route.route, state.route.fallback_key_id, state.route.until)
    assert published == derive(state, state.now)
