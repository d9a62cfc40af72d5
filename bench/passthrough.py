"""The throughput baseline: a raw aiokafka consume → produce loop, no billing, no state.

    .venv/bin/python -m bench.passthrough BOOTSTRAP INPUT_TOPIC OUTPUT_TOPIC GROUP

What any Python consumer of the same broker pays to move the same records from one topic to
another: it reads a batch, sends every record (same key, same value) with the worker's
producer settings (``acks=all``, the same linger, batch size and compression), waits for all
acknowledgements, then commits — the at-least-once pattern the worker follows, minus the
billing. Runs until SIGTERM, as its own process, like a worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.topology import PRODUCER
from streams.worker import BATCH_MAX as BATCH  # records per poll: the worker's batch size


async def passthrough(bootstrap: str, source: str, target: str, group: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    consumer = AIOKafkaConsumer(
        source, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", max_poll_records=BATCH,
    )  # fmt: skip
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=int(PRODUCER.linger_s * 1000),
        max_batch_size=PRODUCER.max_batch_size,
        compression_type=PRODUCER.compression,
    )
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=100, max_records=BATCH)
            pending = [
                await producer.send(target, record.value, key=record.key)
                for records in fetched.values()
                for record in records
            ]
            if pending:
                await asyncio.gather(*pending)
                await consumer.commit()
    finally:
        with contextlib.suppress(Exception):
            await producer.stop()
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("bootstrap", "source", "target", "group"):
        parser.add_argument(name)
    args = parser.parse_args()
    asyncio.run(passthrough(args.bootstrap, args.source, args.target, args.group))


if __name__ == "__main__":
    main()
