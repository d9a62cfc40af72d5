"""``metering dlq show|replay`` and ``metering discount set`` against a real broker: what they
print is what the DLQ topic holds, and what they publish is read back from Kafka."""

from __future__ import annotations

import asyncio
import base64

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from typer import Typer
from typer.testing import CliRunner, Result

from metering.cli import discount, dlq
from metering.errors import InputError
from metering.settings import load_settings
from metering.topic_reader import read_topic
from schemas import topics
from schemas.discounts import DiscountChange
from schemas.dlq import DeadLetter
from streams.admin import ensure_topics
from tests.factories import at, encode, request

pytestmark = pytest.mark.integration

REQUEST = encode(request("acct_early", start=at(0)))
LETTERS = [
    ("gateway.requests", 0, 5, "acct_early", "unknown_account", REQUEST),
    ("gateway.requests", 1, 7, "acct_b", "invalid", b'{"request_id": "cut sh'),
    ("gateway.requests", 2, 9, "acct_c", "secret", b'{"prompt": "sk-[REDACTED]"}'),
]


def _letter(topic: str, partition: int, offset: int, key: str, code: str, raw: bytes) -> bytes:
    return (
        DeadLetter(
            schema_version=1,
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
            key=key,
            code=code,  # type: ignore[arg-type]  # a literal of the tuple above
            reason=f"refused: {code}",
            payload=raw.decode(),
            payload_b64=base64.b64encode(raw).decode(),
        )
        .model_dump_json()
        .encode()
    )


async def _cli(app: Typer, args: list[str]) -> Result:
    """The command in a thread: it runs its own event loop, as from a shell."""
    runner = CliRunner()
    return await asyncio.to_thread(lambda: runner.invoke(app, args))


async def _topics_with_letters(bootstrap: str, prefix: str) -> None:
    await ensure_topics(load_settings(), bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for letter in LETTERS:
            await producer.send_and_wait(prefix + topics.DLQ, _letter(*letter), key=b"k")
        await producer.send_and_wait(prefix + topics.DLQ, b"not a dead letter")
    finally:
        await producer.stop()


def _one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, InputError), result.exception
    message = str(result.exception)
    assert "\n" not in message
    return message


@pytest.mark.usefixtures("cli_env")
async def test_dlq_show_lists_the_letters_and_filters_by_code(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    # given three dead letters (and one value that is not one) on the DLQ topic
    await _topics_with_letters(kafka_bootstrap, kafka_topic_prefix)

    # when they are shown as JSON lines, all of them and then one code
    every = await _cli(dlq.app, ["show", "--format", "json"])
    one = await _cli(dlq.app, ["show", "--code", "unknown_account", "--format", "json"])
    table = await _cli(dlq.app, ["show", "--limit", "2"])

    # then each letter is a line with its source, code, key and exact bytes
    assert every.exit_code == 0, every.output
    shown = [orjson.loads(line) for line in every.stdout.splitlines()]
    assert [(s["source_topic"], s["source_partition"], s["source_offset"], s["key"], s["code"])
            for s in shown] == [letter[:5] for letter in LETTERS]  # fmt: skip
    assert [base64.b64decode(s["payload_b64"]) for s in shown] == [ltr[5] for ltr in LETTERS]
    assert "3 of 3 dead letters" in every.stderr and "1 values that are not" in every.stderr
    assert one.exit_code == 0, one.output
    assert [orjson.loads(line)["key"] for line in one.stdout.splitlines()] == ["acct_early"]
    # and the table names the first two, not the third
    assert table.exit_code == 0, table.output
    assert "gateway.requests:0:5" in table.stdout and "unknown_account" in table.stdout
    assert "gateway.requests:1:7" in table.stdout and "acct_c" not in table.stdout


@pytest.mark.usefixtures("cli_env")
async def test_dlq_replay_republishes_the_original_bytes_with_the_key(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    await _topics_with_letters(kafka_bootstrap, kafka_topic_prefix)
    requests = kafka_topic_prefix + topics.REQUESTS
    source = ["--source-offset", "gateway.requests:0:5"]

    # a dry run says what it would do and publishes nothing
    dry = await _cli(dlq.app, ["replay", *source, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert (
        f"would republish gateway.requests:0:5 (unknown_account, key acct_early) to {requests}"
        in dry.stdout
    )
    assert await read_topic(kafka_bootstrap, requests) == []

    # a secret-redacted payload is refused in one line, nothing published
    secret = await _cli(dlq.app, ["replay", "--code", "secret"])
    assert "gateway.requests:2:9 (secret) cannot be republished" in _one_line_error(secret)
    missing = await _cli(dlq.app, ["replay", "--source-offset", "gateway.requests:0:6"])
    assert "no dead letter" in _one_line_error(missing)
    assert await read_topic(kafka_bootstrap, requests) == []

    # the replay publishes the refused record's exact bytes, keyed as before, to its topic
    done = await _cli(dlq.app, ["replay", *source])
    assert done.exit_code == 0, done.output
    (record,) = await read_topic(kafka_bootstrap, requests)
    assert (record.key, record.value) == (b"acct_early", REQUEST)


@pytest.mark.usefixtures("cli_env")
async def test_discount_set_publishes_a_valid_change_keyed_by_model(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    await ensure_topics(load_settings(), kafka_bootstrap)
    discounts = kafka_topic_prefix + topics.DISCOUNTS
    args = ["set", "--model", "z-ai/glm-4.7", "--state", "surplus"]

    published = await _cli(discount.app, [*args, "--at", "2026-11-23T10:00:00Z"])
    unknown = await _cli(discount.app, ["set", "--model", "acme/nothing", "--state", "low"])

    assert published.exit_code == 0, published.output
    assert "acme/nothing" in _one_line_error(unknown)
    (record,) = await read_topic(kafka_bootstrap, discounts)  # the unknown model sent nothing
    assert record.key == b"z-ai/glm-4.7"
    change = DiscountChange.model_validate_json(record.value or b"")
    assert (change.model, change.supply_state) == ("z-ai/glm-4.7", "surplus")
    assert change.effective_at.isoformat() == "2026-11-23T10:00:00+00:00"
