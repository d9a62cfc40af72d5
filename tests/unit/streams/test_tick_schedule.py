"""After a recovery the tick timer's schedule is rebuilt from the deadlines stored beside each
account: the same schedule as decoding every account and asking it, without the decode."""

from __future__ import annotations

import asyncio
from datetime import datetime

import orjson

from schemas import topics
from streams.codecs import account_from_body
from streams.worker import BillingWorker
from tests.factories import at, encode, request, started
from tests.unit.streams.test_worker_order import Message, worker

ACCOUNTS = ("acct_1", "acct_2", "acct_3")


def billed() -> tuple[BillingWorker, dict[str, bytes]]:
    """A worker after a subscription and a request of each account, and its account table."""
    billing = worker()
    records = [
        Message(topics.SUBSCRIPTIONS, n, encode(started(account)), key=account.encode())
        for n, account in enumerate(ACCOUNTS)
    ]
    records += [
        Message(topics.REQUESTS, n, encode(request(account, start=at(n + 1))), key=account.encode())
        for n, account in enumerate(ACCOUNTS)
    ]
    asyncio.run(billing.handle(records))
    return billing, billing.topology.accounts


def decoded_schedule(table: dict[str, bytes]) -> list[tuple[datetime, str]]:
    """What the schedule must hold: each stored account decoded and asked its deadline."""
    found = []
    for account, raw in table.items():
        deadline = account_from_body(orjson.loads(raw)["state"]).next_deadline()
        if deadline is not None:
            found.append((deadline, account))
    return sorted(found)


def test_the_rebuilt_schedule_is_every_stored_accounts_next_deadline() -> None:
    billing, table = billed()
    assert sorted(table) == sorted(ACCOUNTS)
    asyncio.run(billing.rebuild_deadlines())
    assert billing.deadlines[0] == min(billing.deadlines)  # a heap: the timer pops the earliest
    assert sorted(billing.deadlines) == decoded_schedule(table)


def test_a_value_stored_before_deadlines_were_kept_beside_it_is_decoded() -> None:
    billing, table = billed()
    old = orjson.loads(table["acct_2"])
    del old["next"]
    dict.__setitem__(table, "acct_2", orjson.dumps(old))  # as an older worker wrote it
    asyncio.run(billing.rebuild_deadlines())
    assert sorted(billing.deadlines) == decoded_schedule(table)


def test_an_account_stored_without_a_deadline_is_not_scheduled() -> None:
    billing, table = billed()
    value = orjson.loads(table["acct_3"])
    value["next"] = None
    dict.__setitem__(table, "acct_3", orjson.dumps(value))
    asyncio.run(billing.rebuild_deadlines())
    assert {account for _, account in billing.deadlines} == {"acct_1", "acct_2"}
