"""The injected ClickHouse outage: everything fails while it lasts, some inserts land first."""

from __future__ import annotations

from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import OperationalError

from reliability.outage import OutageClient


class FakeClient:
    def __init__(self) -> None:
        self.inserted: list[Any] = []

    def query(self, sql: str) -> str:
        return f"rows of {sql}"

    def insert(self, table: str, rows: Any) -> None:
        self.inserted.append(rows)

    def command(self, sql: str) -> str:
        return "ok"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_calls_pass_through_until_an_outage_begins() -> None:
    client = OutageClient(FakeClient(), clock=Clock())
    assert client.query("SELECT 1") == "rows of SELECT 1"
    client.insert("ledger", [1])
    assert client.client.inserted == [[1]] and client.failed_calls == 0


def test_an_outage_refuses_inserts_then_everything_and_the_first_insert_lands() -> None:
    clock = Clock()
    client = OutageClient(FakeClient(), landed=1, clock=clock)
    client.begin(30)
    assert client.query("SELECT 1") == "rows of SELECT 1"  # first half: reads still answer
    with pytest.raises(OperationalError, match="written before the error"):
        client.insert("ledger", [1])  # a timeout after the server wrote the block
    with pytest.raises(OperationalError):
        client.insert("ledger", [1])  # the retry of the same block: refused
    clock.now += 15  # second half: the server is gone
    with pytest.raises(OperationalError, match="injected ClickHouse outage"):
        client.query("SELECT 1")
    assert client.client.inserted == [[1]]
    assert (client.failed_calls, client.landed_then_failed) == (3, 1)
    assert client.command("SELECT 1") == "ok"  # what the sink does not call is untouched


def test_the_store_answers_again_once_the_outage_is_over() -> None:
    clock = Clock()
    client = OutageClient(FakeClient(), landed=0, clock=clock)
    client.begin(30)
    clock.now += 29.9
    with pytest.raises(OperationalError):
        client.insert("ledger", [1])
    clock.now += 0.1
    client.insert("ledger", [2])
    assert client.client.inserted == [[2]] and not client.down
