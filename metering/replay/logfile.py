"""The replay file format: one ``{"topic": …, "value": {…}}`` object per line, in log order.

Values are kept as their exact original text, so numbers are never round-tripped through a
binary float and a dead letter holds the bytes the log really had. Optional fields a Kafka
export adds — ``key``, ``partition``, ``offset``, ``timestamp`` — are honoured.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from billing.source import Source

_DECODER = json.JSONDecoder()
_SPACE = " \t\r\n"


@dataclass(frozen=True, slots=True)
class LogRecord:
    source: Source
    payload: bytes
    key: str | None


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that could not be read as a log record, kept for the dead-letter topic."""

    number: int
    raw: bytes
    reason: str


class MalformedLine(ValueError):
    """A line that is not a ``{"topic", "value"}`` object; it becomes a dead letter."""


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in _SPACE:
        index += 1
    return index


def split_object(text: str) -> dict[str, tuple[Any, str]]:
    """Top-level members of a JSON object as (parsed value, exact source text)."""
    index = _skip(text, 0)
    if not text.startswith("{", index):
        raise MalformedLine("not a JSON object")
    members: dict[str, tuple[Any, str]] = {}
    index = _skip(text, index + 1)
    if text.startswith("}", index):
        return members
    while True:
        try:
            name, index = _DECODER.raw_decode(text, index)
            index = _skip(text, index)
            if not text.startswith(":", index) or not isinstance(name, str):
                raise MalformedLine("expected a member name and ':'")
            start = _skip(text, index + 1)
            value, index = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            raise MalformedLine(f"invalid JSON ({exc.msg})") from None
        except RecursionError:  # the C scanner's limit is the interpreter's stack depth
            raise MalformedLine("invalid JSON (nested too deeply)") from None
        members[name] = (value, text[start:index])
        index = _skip(text, index)
        if text.startswith(",", index):
            index = _skip(text, index + 1)
            continue
        if text.startswith("}", index) and not text[index + 1 :].strip():
            return members
        raise MalformedLine("expected ',' or a final '}'")


def _timestamp(value: Any) -> datetime | None:
    """The record's Kafka timestamp; anything that is not a real instant is a bad line (a
    bad export must not stop the replay of the lines after it)."""
    if value is None:
        return None
    try:
        if type(value) is int:  # JSON true is not an instant
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is not None:
                return parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        pass  # out of range, or not ISO 8601: said below
    raise MalformedLine("timestamp must be epoch milliseconds or an RFC 3339 time with offset")


_PLAIN = r'"([^"\\\x00-\x1f]*)"'
_WRITTEN_LINE = re.compile(
    rf'\{{ ?"topic": ?{_PLAIN}(?:, ?"key": ?{_PLAIN})?(?:, ?"timestamp": ?{_PLAIN})?'
    r', ?"value": ?(\S(?:.*\S)?)\}'
)
"""A line as the simulator and ``metering replay`` write it: topic, optional key and
timestamp as plain strings (no escapes), then the value, last. Only the value's extent is
left to check (``_written``)."""


def _written(line: str, number: int) -> LogRecord | None:
    """The record of a line in the written layout, read with one regex and one C parse; None
    for any other line (``_by_members`` reads those, a few times slower).

    What follows ``"value":`` up to the final brace is the value's exact text when it parses
    as one JSON value; otherwise it is not (another member follows, or the line is broken)."""
    match = _WRITTEN_LINE.fullmatch(line)
    if match is None:
        return None
    topic, key, stamp, value = match.groups()
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return LogRecord(Source(topic, 0, number, _timestamp(stamp)), value.encode("utf-8"), key)


def parse_line(line: str, number: int) -> LogRecord:
    """One log line → the record to feed; raises ``MalformedLine``."""
    written = _written(line, number)
    return written if written is not None else _by_members(line, number)


def _by_members(line: str, number: int) -> LogRecord:
    """Any valid line, whatever its layout; raises ``MalformedLine`` saying what is wrong."""
    members = split_object(line)
    if "topic" not in members or "value" not in members:
        raise MalformedLine("a log line needs 'topic' and 'value'")
    topic = members["topic"][0]
    if not isinstance(topic, str):
        raise MalformedLine("'topic' must be a string")
    key = members.get("key", (None, ""))[0]
    partition = members.get("partition", (0, ""))[0]
    offset = members.get("offset", (number, ""))[0]
    if type(partition) is not int or type(offset) is not int:  # JSON true is not an int here
        raise MalformedLine("'partition' and 'offset' must be integers")
    source = Source(topic, partition, offset, _timestamp(members.get("timestamp", (None, ""))[0]))
    return LogRecord(
        source, members["value"][1].encode("utf-8"), key if isinstance(key, str) else None
    )


def read_log(stream: IO[bytes]) -> Iterator[LogRecord | BadLine]:
    """The records of a log, in order; a malformed line comes back as a ``BadLine``."""
    for number, raw in enumerate(stream):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            yield parse_line(line.decode("utf-8"), number)
        except UnicodeDecodeError:
            yield BadLine(number, line, f"log line {number + 1} is not valid UTF-8")
        except MalformedLine as exc:
            yield BadLine(number, line, f"log line {number + 1}: {exc}")


def output_line(topic: str, value_json: bytes) -> bytes:
    """One ``OUT.jsonl`` line, as bytes: the value's JSON is written as the serializer gave it."""
    return b'{"topic":"%s","value":%s}\n' % (topic.encode(), value_json)
