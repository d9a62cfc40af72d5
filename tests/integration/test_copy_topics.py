"""``metering kafka copy-topics`` on a real broker: the input log moves to new topics with
more partitions, every record with its key, value and timestamp, each account's records in
their order; a second copy onto the same topics, or a copy onto the current prefix, is refused."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from typer.testing import CliRunner, Result

from metering.cli import kafka
from metering.errors import ConfigError
from metering.settings import load_settings
from metering.topic_reader import partitions, read_topic
from schemas import topics
from streams.admin import ALL_TOPICS, ensure_topics
from tests.factories import at, discount, encode, request, started

pytestmark = pytest.mark.integration

ACCOUNTS = [f"acct_{n}" for n in range(8)]
T0 = 1_795_000_000_000  # Kafka timestamps (ms) the copy must keep


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, cli_env: None) -> None:
    """The source topics get two partitions (the copy three)."""
    monkeypatch.setenv("METERING_PARTITIONS", "2")
    load_settings.cache_clear()


async def _cli(args: list[str]) -> Result:
    """The command in a thread: it runs its own event loop, as from a shell."""
    return await asyncio.to_thread(CliRunner().invoke, kafka.app, args)


async def _source_log(bootstrap: str, prefix: str) -> None:
    """Two partitions per input topic: subscriptions, interleaved requests, discount changes
    keyed by model, and no adjustments at all."""
    await ensure_topics(load_settings(), bootstrap)
    async with AIOKafkaProducer(bootstrap_servers=bootstrap) as producer:
        sends = []
        for n, account in enumerate(ACCOUNTS):
            sends.append((topics.SUBSCRIPTIONS, account, encode(started(account)), T0 + n))
        for i in range(5):
            for n, account in enumerate(ACCOUNTS):
                value = encode(request(account, start=at(i), request_id=f"{account}-{i}"))
                sends.append((topics.REQUESTS, account, value, T0 + 100 * i + n))
        for state, minutes in (("high", 1), ("surplus", 2)):
            change = encode(discount("z-ai/glm-4.7", state, at(minutes)))
            sends.append((topics.DISCOUNTS, "z-ai/glm-4.7", change, T0 + minutes))
        for topic, key, value, stamp in sends:
            await producer.send(prefix + topic, value, key=key.encode(), timestamp_ms=stamp)


def _by_key(records: list[ConsumerRecord[bytes, bytes]]) -> dict[bytes | None, list[object]]:
    """Each key's (value, timestamp) in the order a consumer of its partition reads them."""
    found: dict[bytes | None, list[object]] = defaultdict(list)
    for record in records:  # partition by partition, each in offset order
        found[record.key].append((record.value, record.timestamp))
    return dict(found)


async def test_the_input_log_moves_to_more_partitions_in_order(
    env: None, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    await _source_log(kafka_bootstrap, kafka_topic_prefix)
    new = kafka_topic_prefix + "grown-"

    done = await _cli(["copy-topics", "--to-prefix", new, "--partitions", "3", "-q"])

    assert done.exit_code == 0, done.output
    for name in topics.INPUT_TOPICS:
        source = await read_topic(kafka_bootstrap, kafka_topic_prefix + name)
        target = await read_topic(kafka_bootstrap, new + name)
        assert _by_key(target) == _by_key(source), name
        assert len({r.partition for r in target}) <= 3
    requests = await read_topic(kafka_bootstrap, new + topics.REQUESTS)
    assert len(requests) == 5 * len(ACCOUNTS)
    assert len({r.partition for r in requests}) == 3  # spread over the new partitions
    assert f"{kafka_topic_prefix}{topics.REQUESTS}" in done.output and " 40 " in done.output
    # every topic of the new deployment exists, outputs included, with the new count
    created = await partitions(kafka_bootstrap, [new + name for name in ALL_TOPICS])
    assert len(created) == 3 * len(ALL_TOPICS)

    again = await _cli(["copy-topics", "--to-prefix", new, "--partitions", "3", "-q"])

    assert again.exit_code == 1
    assert isinstance(again.exception, ConfigError), again.exception
    assert f"{new}{topics.REQUESTS} (40 records)" in str(again.exception)
    assert len(await read_topic(kafka_bootstrap, new + topics.REQUESTS)) == 40  # untouched


async def test_a_copy_onto_the_current_prefix_is_refused(
    env: None, kafka_topic_prefix: str
) -> None:
    done = await _cli(["copy-topics", "--to-prefix", kafka_topic_prefix, "--partitions", "3"])

    assert done.exit_code == 1
    assert isinstance(done.exception, ConfigError), done.exception
    assert "must differ" in str(done.exception)
