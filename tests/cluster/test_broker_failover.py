"""A broker of a 3-node cluster stops during load: the pipeline keeps charging, loses nothing,
and the broker comes back and catches up (its replicas rejoin every ISR).

Load: the simulator's gateways publishing through the gateway SDK (``acks=all``) while a
worker (a ``metering worker`` subprocess) charges; the ledger, tailed from the topic, must
equal the offline replay of the input topics read back afterwards.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from deploy.kafka.cluster import LocalKafkaCluster
from deploy.kafka.config import free_ports
from metering.demo.stack import worker_process
from schemas import topics
from schemas.ledger import LedgerEntry
from streams.admin import ALL_TOPICS
from tests.cluster.conftest import worker_env
from tests.cluster.load import GatewayLoad, LoadShape
from tests.cluster.observe import ClusterView, LedgerTail, supply_shown, wall
from tests.cluster.oracle import differences, holds, replayed_ledger
from tests.integration.ledger_pipeline import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

APP_ID = "e2e"
TABLES = ("accounts", "seen", "discounts", "positions")


@dataclass(frozen=True)
class Failover:
    load: LoadShape  # its duration is an upper bound: the load stops after the last outage
    partitions: int
    outages: tuple[str, ...]  # per outage in turn: "stop" (SIGTERM) or "kill" (SIGKILL)
    charged_while_down: int  # entries the pipeline must charge while the broker is away


FAST = Failover(LoadShape(accounts=20, rate=15, duration=600), 3, ("stop",), 30)
FULL = Failover(LoadShape(accounts=60, rate=40, duration=1200), 6, ("stop", "kill"), 300)


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(FAST, id="fast"),
        pytest.param(FULL, id="full", marks=[pytest.mark.cluster, pytest.mark.timeout(1800)]),
    ],
)
async def test_a_broker_down_during_load_loses_nothing_and_catches_up(
    form: Failover, kafka_cluster: LocalKafkaCluster, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    # given a worker on the 3-node cluster
    bootstrap, prefix = kafka_cluster.bootstrap_servers, kafka_topic_prefix
    env = worker_env(bootstrap, prefix, tmp_path / "worker", form.partitions)
    log, port = tmp_path / "worker.log", free_ports(1)[0]
    with worker_process(env, port, log, store="rocksdb://", app_id=APP_ID):
        async with ClusterView(bootstrap) as view:
            # then every topic, Faust's changelogs too, keeps 3 copies and needs 2 per write
            changelogs = [f"{prefix}{APP_ID}-{table}-changelog" for table in TABLES]
            replication = await view.replication([prefix + t for t in ALL_TOPICS] + changelogs)
            assert {(r.factors, r.min_insync) for r in replication.values()} == {
                (frozenset({3}), "2")
            }, replication
            assert set(changelogs) <= set(replication)

            async with (
                LedgerTail(bootstrap, prefix) as tail,
                GatewayLoad(bootstrap, prefix, form.load, form.partitions) as load,
            ):
                states = await load.publish_setup()
                await wait_until(partial(supply_shown, [port], states), "the supply states", 120)
                load.start()
                await wait_until(partial(_at_least, tail, 20), "the pipeline charging", 120)
                for outage in form.outages:
                    # when the leader of an input partition goes away during load
                    victim = await view.leader(prefix + topics.REQUESTS, 0)
                    down = time.perf_counter()
                    await asyncio.to_thread(kafka_cluster.stop_node, victim, kill=outage == "kill")
                    gone = wall()

                    # then the pipeline goes on charging without it
                    charged = await wait_until(
                        partial(_at_least, tail, form.charged_while_down, since=gone),
                        f"{form.charged_while_down} entries charged with broker {victim} down",
                        180,
                    )

                    # when it comes back, then it catches up: its replicas rejoin every ISR
                    back = time.perf_counter()
                    await asyncio.to_thread(kafka_cluster.start_node, victim)
                    registered = time.perf_counter() - back
                    catch_up = await wait_until(
                        partial(_in_sync, view), f"broker {victim} back in every ISR", 180
                    )
                    await wait_until(
                        partial(_at_least, tail, 20, since=wall()), "charging with all three", 120
                    )
                    print(
                        f"\nbroker {victim} ({'SIGKILL' if outage == 'kill' else 'SIGTERM'}): "
                        f"{form.charged_while_down} entries charged {charged:.1f} s after it "
                        f"was gone; down {back - down:.1f} s in all; back: registered in "
                        f"{registered:.1f} s, every ISR complete {catch_up:.1f} s later "
                        f"(load so far: {load.sent} events published)"
                    )
                await load.stop()

                # then the ledger equals the offline replay of the inputs, entry for entry
                expected = await replayed_ledger(bootstrap, prefix)
                await wait_until(
                    partial(_holds, tail, expected), f"{len(expected)} ledger entries", 180
                )
                assert differences(expected, tail.ledger()) == ([], [], {})
                print(
                    f"ledger: {len(expected)} entries from {load.sent} published events = the "
                    "offline replay, field for field"
                )


async def _at_least(tail: LedgerTail, count: int, since: float = 0.0) -> bool:
    return len(tail.since(since)) >= count


async def _in_sync(view: ClusterView) -> bool:
    return not await view.replica_gaps()


async def _holds(tail: LedgerTail, expected: list[LedgerEntry]) -> bool:
    return holds(expected, tail.entry_ids())
