"""Bad input goes to the DLQ with its bytes and a reason; duplicates are charged once."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from billing.catalog import load_catalog
from billing.engine import Engine
from billing.source import Source
from schemas import topics
from tests.factories import adjustment, at, encode, request, started
from tests.unit.billing.conftest import run_scenario


@pytest.mark.parametrize(
    ("mutate", "code", "phrase"),
    [
        (
            lambda r: {**r, "usage": {**r["usage"], "input_tokens": -1}},
            "invalid",
            "greater than or equal to 0",
        ),
        (
            lambda r: {**r, "completed_at": "2026-11-02T08:00:00Z"},
            "invalid",
            "completed_at is before started_at",
        ),
        (lambda r: {**r, "surprise": 1}, "invalid", "surprise: Extra inputs are not permitted"),
        (
            lambda r: {**r, "usage": {**r["usage"], "output_tokens": "10"}},
            "invalid",
            "valid integer",
        ),
        (lambda r: {**r, "started_at": "2026-11-02T09:00:00"}, "invalid", "timezone"),
        (lambda r: {**r, "account_id": "acct_unknown"}, "unknown_account", "no subscription"),
        (lambda r: {**r, "model": "acme/unknown-model"}, "unknown_model", "not in catalog"),
        (
            lambda r: {**r, "model": "openai/gpt-5.2-pro"},
            "model_not_allowed",
            "not allowed on the zenmux pro plan",
        ),
        (lambda r: {**r, "api_key_id": "sk-ss-v1-abcdef123456"}, "secret", "redacted"),
    ],
)
def test_invalid_request_goes_to_dlq_with_reason_and_worker_keeps_going(
    mutate, code, phrase
) -> None:  # type: ignore[no-untyped-def]
    bad = mutate(request(start=at(1)))
    good = request(start=at(2))
    result = run_scenario([started(), bad, good])
    assert len(result.dead) == 1
    letter = result.dead[0]
    assert letter.code == code and phrase in letter.reason
    assert letter.source_topic == topics.REQUESTS and letter.source_offset == 1
    assert [e.request_id for e in result.ledger] == [good["request_id"]]


def test_secret_is_redacted_from_the_dead_letter_bytes() -> None:
    bad = request(start=at(1))
    bad["api_key_id"] = "sk-proj-AAAAbbbbCCCCdddd"
    letter = run_scenario([started(), bad]).dead[0]
    assert "sk-proj-AAAA" not in letter.payload
    assert b"sk-proj" not in base64.b64decode(letter.payload_b64)
    assert "sk-[REDACTED]" in letter.payload


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b"\xff\xfe\x00garbage",
        b"[" * 5000 + b"]" * 5000,
        b'{"schema_version": 1e400}',
        b"null",
        b"x" * 70_000,
    ],
)
def test_unparseable_payloads_are_kept_with_their_bytes(payload: bytes) -> None:
    engine = Engine(load_catalog(), accounts={}, seen={}, discounts={})
    result = engine.process(Source(topics.REQUESTS, 3, 42), payload)
    letter = result.emitted[0].value
    assert result.emitted[0].topic == topics.DLQ
    assert letter.source_partition == 3 and letter.source_offset == 42  # type: ignore[attr-defined]
    assert base64.b64decode(letter.payload_b64) == payload[: 64 * 1024]  # type: ignore[attr-defined]


def test_future_timestamp_is_judged_against_the_record_ingest_time() -> None:
    engine = Engine(load_catalog(), accounts={}, seen={}, discounts={})
    engine.process(Source(topics.SUBSCRIPTIONS), encode(started()))
    future = request(start=at(30))
    result = engine.process(Source(topics.REQUESTS, ingest_time=at(20)), encode(future))
    assert result.emitted[0].value.code == "future_timestamp"  # type: ignore[attr-defined]
    on_time = engine.process(
        Source(topics.REQUESTS, ingest_time=at(40)), encode(request(start=at(30)))
    )
    assert on_time.emitted[0].topic == topics.LEDGER


def test_duplicate_delivery_is_charged_once() -> None:
    chat = request(start=at(1))
    result = run_scenario([started(), chat, chat, json.loads(json.dumps(chat))])
    assert len(result.ledger) == 1 and not result.dead


def test_reformatted_duplicate_is_still_a_duplicate() -> None:
    chat = request(start=at(1))
    reordered = dict(reversed(list(chat.items())))
    reordered["started_at"] = chat["started_at"].replace("Z", "+00:00")
    result = run_scenario([started(), chat, reordered])
    assert len(result.ledger) == 1 and not result.dead


def test_same_request_id_with_different_content_is_a_conflict_in_the_dlq() -> None:
    chat = request(start=at(1))
    changed = {**chat, "usage": {**chat["usage"], "output_tokens": 99}}
    result = run_scenario([started(), chat, changed])
    assert len(result.ledger) == 1
    assert result.dead[0].code == "conflict" and chat["request_id"] in result.dead[0].reason


def test_request_older_than_the_dedup_horizon_is_dead_lettered_not_charged() -> None:
    result = run_scenario(
        [
            started(when=at(days=-60), period_days=90),
            request(start=at(0)),
            request(start=at(days=-45)),
        ]
    )
    assert len(result.ledger) == 1 and result.dead[0].code == "too_late"


def test_stragglers_days_late_are_still_charged() -> None:
    straggler = request(start=at(days=1))
    result = run_scenario([started(), request(start=at(0)), request(start=at(days=4)), straggler])
    entry = result.entry(straggler["request_id"])
    assert entry.late and entry.funding == "subscription"


def test_correction_is_a_new_entry_that_restores_an_exhausted_open_window() -> None:
    chats = [request(start=at(i)) for i in range(200)]
    result = run_scenario([started(), *chats])
    crossing = next(e for e in result.ledger if e.overshoot > 0)
    refund = adjustment(crossing.entry_id, str(crossing.debit), when=at(210))
    later = request(start=at(211))
    after = run_scenario([started(), *chats, refund, later])
    correction = next(e for e in after.ledger if e.kind == "adjustment")
    assert correction.adjusts_entry_id == crossing.entry_id and correction.debit == -crossing.debit
    restored = [q for q in after.quota if q.type == "restored"]
    assert restored[0].reason == "correction" and restored[0].at == at(210)
    assert after.entry(later["request_id"]).funding == "subscription"
    reopened = [r for r in after.routing if r.reason == "correction"]
    assert len(reopened) == 1 and reopened[0].route == "subscription" and reopened[0].at == at(210)


def test_correction_of_unknown_or_fully_reversed_entry_is_refused() -> None:
    chat = request(start=at(1))
    result = run_scenario([started(), chat])
    entry = result.ledger[0]
    values = [
        started(),
        chat,
        adjustment("le_doesnotexist", "1", when=at(5)),
        adjustment(entry.entry_id, str(entry.debit), when=at(6)),
        adjustment(entry.entry_id, "0.000000000001", when=at(7)),
    ]
    after = run_scenario(values)
    assert [d.code for d in after.dead] == ["unknown_entry", "adjustment_rejected"]
    assert "fully reversed" in after.dead[1].reason
    assert sum(e.debit for e in after.ledger) == 0


def test_ledger_entry_ids_are_deterministic_across_runs() -> None:
    values = [started(), *[request(start=at(i), request_id=f"r{i}") for i in range(5)]]
    first = [e.entry_id for e in run_scenario(values).ledger]
    second = [e.entry_id for e in run_scenario(values).ledger]
    assert first == second and len(set(first)) == 5


def test_late_arrival_within_minutes_is_charged_by_its_own_timestamps() -> None:
    early = request(start=at(1), duration=timedelta(seconds=1))
    result = run_scenario([started(), request(start=at(3)), early])
    assert result.entry(early["request_id"]).window_5h_id == "acct_1/5h/2026-11-02T09:03:00Z"


def test_the_same_record_read_again_after_a_crash_is_applied_not_dropped() -> None:
    # given the idempotency record of a request was saved but its account state was not
    engine = Engine(load_catalog(), accounts={}, seen={}, discounts={})
    engine.process(Source(topics.SUBSCRIPTIONS, 0, 0), encode(started()))
    saved_account = engine.accounts["acct_1"]
    chat = encode(request(start=at(1)))
    first = engine.process(Source(topics.REQUESTS, 0, 7), chat)
    engine.accounts["acct_1"] = saved_account  # the crash lost the account's write
    # when the same record (same offset) is delivered again
    again = engine.process(Source(topics.REQUESTS, 0, 7), chat)
    # then it is applied again, identically; a copy at another offset is still a duplicate
    assert [e.value for e in again.emitted] == [e.value for e in first.emitted]
    assert engine.process(Source(topics.REQUESTS, 0, 8), chat).duplicate
