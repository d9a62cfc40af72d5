"""The log reader's fast path (the layout the simulator writes) reads exactly what the
member-by-member reader reads, and leaves every other line to it.

A line's value is kept as its exact text (dead letters hold it), so a wrong cut of the value
would change outputs silently: any line the fast path accepts must give the same record,
and a line it raises on must raise the same.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metering.replay.logfile import (
    BadLine,
    LogRecord,
    MalformedLine,
    _by_members,
    _written,
    read_log,
)

TIMESTAMP = "timestamp must be epoch milliseconds or an RFC 3339 time with offset"

TEXT = st.sampled_from(["gateway.requests", "acct_1", "value", "", "a b", "é"]) | st.text(
    alphabet=st.sampled_from(['"', "\\", "\t", "\x01", "}", "{", ",", ":", " ", "a", "é", "/"]),
    max_size=6,
)
STAMPS = st.sampled_from(["2026-11-01T00:00:00Z", "2026-11-01T00:00:00.120+01:00", "2026", "x"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
SPACE = st.sampled_from(["", "", "", " ", " ", "  ", "\t"])
JUNK = st.sampled_from(["", "", "", "", "", "", "}", "]", ',"value":1', ',"x":{}', " ", "\\", '"'])
RAW = st.integers(0, 5).map(lambda n: n == 0)
"""Mostly a well-quoted string; sometimes the text between quotes as it is."""


def quoted(text: str, raw: bool) -> str:
    """``text`` as a JSON string, or (``raw``) between quotes as it is, however broken."""
    return f'"{text}"' if raw else json.dumps(text)


@st.composite
def lines(draw: st.DrawFn) -> str:
    gap = draw(SPACE)
    parts = [f'"topic":{gap}{quoted(draw(TEXT), draw(RAW))}']
    if draw(st.booleans()):
        parts.append(f'"key":{draw(SPACE)}{quoted(draw(TEXT), draw(RAW))}')
    if draw(st.booleans()):
        parts.append(f'"timestamp":{draw(SPACE)}"{draw(STAMPS)}"')
    value = json.dumps(draw(JSON), indent=draw(st.sampled_from([None, None, 1])))
    parts.append(f'"value":{draw(SPACE)}{value}{draw(JUNK)}')
    if draw(RAW):
        parts.insert(draw(st.integers(0, len(parts))), f'"value":{draw(SPACE)}{value}')
    return "{" + draw(SPACE) + f",{draw(SPACE)}".join(parts) + draw(JUNK) + "}" + draw(JUNK)


def outcome(read: Any, line: str) -> object:
    try:
        return read(line, 7)
    except (MalformedLine, ValueError) as exc:
        return (type(exc), str(exc))


@settings(max_examples=3000, deadline=None)
@given(line=lines())
def test_the_fast_path_reads_what_the_member_reader_reads(line: str) -> None:
    fast = outcome(_written, line)
    if fast is not None:
        assert fast == outcome(_by_members, line)


def test_the_written_layout_takes_the_fast_path() -> None:
    line = '{"topic":"gateway.requests","key":"acct_1","timestamp":"2026-11-01T00:00:00Z","value":{"a": [1, "}"]}}'
    record = _written(line, 3)
    assert record is not None and record == _by_members(line, 3)
    assert record.payload == b'{"a": [1, "}"]}'


def test_lines_the_fast_path_must_leave_to_the_member_reader() -> None:
    for line in (
        '{"topic":"t","value":{"value":1},"value":2}',  # a later member named value wins
        '{"topic":"t","value":{"a":1}, "b":2}',  # the value is not the last member
        '{"topic":"t","value":{"a":1} }',  # space before the brace: not in the value's text
        '{"topic":"t","value":  {"a":1}}',  # two spaces: not in the value's text either
        '{"topic":"t\\u0041","value":1}',  # an escaped topic
        '{"topic":"t","value":NaN}',  # Python's JSON extensions
    ):
        assert _written(line, 0) is None, line
        assert outcome(_by_members, line) is not None


def test_a_boolean_partition_is_a_malformed_line() -> None:
    # the ledger's source_partition is an integer column: true would break the entry later
    line = '{"topic":"gateway.requests","partition":true,"value":{}}'
    assert outcome(_by_members, line) == (
        MalformedLine,
        "'partition' and 'offset' must be integers",
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (  # deeper than both JSON parsers go: orjson refuses it, json's C scanner overflows
            '{"topic":"gateway.requests","value":' + "[" * 5000 + "]" * 5000 + "}",
            "invalid JSON (nested too deeply)",
        ),
        ('{"topic":"t","timestamp":"yesterday","value":{}}', TIMESTAMP),
        ('{"topic":"t","timestamp":"2026-13-01T00:00:00Z","value":{}}', TIMESTAMP),
        ('{"topic":"t","timestamp":"2026-11-01T00:00:00","value":{}}', TIMESTAMP),  # no offset
        ('{"topic":"t","timestamp":99999999999999999999,"value":{}}', TIMESTAMP),
        ('{"topic":"t","timestamp":true,"value":{}}', TIMESTAMP),
    ],
)
def test_an_unreadable_line_is_a_bad_line_and_the_next_is_read(line: str, reason: str) -> None:
    good = '{"topic":"gateway.requests","timestamp":"2026-11-01T00:00:00Z","value":{}}'
    first, second = read_log(io.BytesIO(f"{line}\n{good}\n".encode()))
    assert first == BadLine(0, line.encode(), f"log line 1: {reason}")
    assert isinstance(second, LogRecord) and second.source.offset == 1
