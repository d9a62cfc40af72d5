"""ClickHouse roles (``sql/access/roles.sql``): the writer appends to the ledger, the analyst
reads; neither can do anything else.

Two levels:

- **Always** (chDB included): the engine parses every statement and prints it back in its
  normal form, and that form is exactly the grants below. chDB has no users, so this proves
  what the file grants, not that a server enforces it.
- **Against a server** (``METERING_CLICKHOUSE_URL``, or a ``CLICKHOUSE_URL`` /
  testcontainers server of the session): users holding each role try every kind of access.
  Skipped when no server exists (none does on the development machine or in its CI: chDB
  is the only ClickHouse there); that skip is deliberate and says so.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from metering.errors import ConfigError
from metering.sink.roles import ROLES, apply_roles, role_statements
from metering.sink.writer import ClickHouseLedgerStore
from metering.warehouse import connect, migrate, parse_url
from tests.integration.ledger_pipeline import billed_ledger

pytestmark = pytest.mark.integration

DB = "metering"
GRANTS = [
    "CREATE ROLE IF NOT EXISTS metering_writer",
    f"GRANT INSERT ON {DB}.ledger TO metering_writer",
    # the sink's stored-entry lookup before each insert (flush step 2): three key columns
    f"GRANT SELECT(entry_id, account_id, started_at) ON {DB}.ledger TO metering_writer",
    "CREATE ROLE IF NOT EXISTS metering_analyst",
    f"GRANT SELECT ON {DB}.* TO metering_analyst",
]
"""What the roles file grants, in the engine's own normal form: nothing more."""


def test_the_engine_parses_the_roles_file_into_exactly_the_intended_grants(
    clickhouse_client: Client,
) -> None:
    # when the engine parses each statement and prints it back
    normal = [
        clickhouse_client.query(
            "SELECT formatQuerySingleLine({q:String})", parameters={"q": statement}
        ).result_rows[0][0]
        for statement in role_statements(DB)
    ]
    # then the writer may insert into the ledger and read its key columns, the analyst may
    # read; no ALTER, DELETE, TRUNCATE, DROP or rollup write anywhere
    assert normal == GRANTS


# -- against a server --------------------------------------------------------------------------


@pytest.fixture
def server_url(clickhouse_url: str) -> str:
    """A server's URL (its user must manage access), or a skip naming what to set."""
    url = os.environ.get("METERING_CLICKHOUSE_URL") or clickhouse_url
    if parse_url(url).kind == "chdb":
        pytest.skip(
            "no ClickHouse server (chDB has no users): set METERING_CLICKHOUSE_URL="
            "http://admin:…@host:8123 to verify the roles against one"
        )
    return url


@pytest.fixture
def admin(server_url: str) -> Client:
    return connect(server_url)


@pytest.fixture
def server_db(admin: Client) -> Iterator[str]:
    name = f"sec_{secrets.token_hex(6)}"
    migrate(admin, database=name)
    try:
        apply_roles(admin, name)
    except ConfigError as exc:
        admin.command(f"DROP DATABASE IF EXISTS {name} SYNC")
        pytest.skip(f"the server user may not manage access: {exc}")
    try:
        yield name
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {name} SYNC")


@pytest.fixture
def as_role(admin: Client, server_url: str, server_db: str) -> Iterator[dict[str, Client]]:
    """One client per role, each logged in as a fresh user holding only that role."""
    url = urlsplit(server_url)
    users, clients = [], {}
    try:
        for role in ROLES:
            user, password = f"{role}_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
            admin.command(f"CREATE USER {user} IDENTIFIED BY '{password}' DEFAULT ROLE NONE")
            users.append(user)
            admin.command(f"GRANT {role} TO {user}")
            admin.command(f"SET DEFAULT ROLE {role} TO {user}")
            clients[role] = clickhouse_connect.get_client(
                host=url.hostname, port=url.port or 8123, username=user, password=password,
                secure=url.scheme == "https", database=server_db,
            )  # fmt: skip
        yield clients
    finally:
        for client in clients.values():
            client.close()
        for user in users:
            admin.command(f"DROP USER IF EXISTS {user}")


def _refused(client: Client, sql: str) -> bool:
    try:
        client.command(sql)
    except ClickHouseError as exc:
        return "ACCESS_DENIED" in str(exc) or "Not enough privileges" in str(exc)
    return False


def test_the_writer_can_only_append_to_the_ledger(
    as_role: dict[str, Client], server_db: str
) -> None:
    writer = as_role["metering_writer"]
    entries = billed_ledger()[:5]
    # the sink's own path works: look up stored ids, insert the rest
    store = ClickHouseLedgerStore(writer, server_db)
    assert store.stored_entry_ids(entries) == set()
    store.insert(entries, token="security-test")
    assert store.stored_entry_ids(entries) == {e.entry_id for e in entries}
    # and nothing else does
    for sql in (
        f"SELECT charge_usd FROM {server_db}.ledger",
        f"SELECT * FROM {server_db}.usage_hourly",
        f"ALTER TABLE {server_db}.ledger DELETE WHERE 1",
        f"ALTER TABLE {server_db}.ledger UPDATE charge_usd = 0 WHERE 1",
        f"TRUNCATE TABLE {server_db}.ledger",
        f"DROP TABLE {server_db}.ledger",
        f"INSERT INTO {server_db}.cost_daily SELECT * FROM {server_db}.cost_daily",
        f"CREATE TABLE {server_db}.x (a UInt8) ENGINE = Memory",
    ):
        assert _refused(writer, sql), sql


def test_the_analyst_can_only_read(as_role: dict[str, Client], server_db: str) -> None:
    analyst = as_role["metering_analyst"]
    assert analyst.query(f"SELECT count() FROM {server_db}.ledger FINAL").result_rows
    assert analyst.query(f"SELECT count() FROM {server_db}.usage_hourly").result_rows
    for sql in (
        f"INSERT INTO {server_db}.ledger (entry_id) VALUES ('forged')",
        f"ALTER TABLE {server_db}.ledger DELETE WHERE 1",
        f"TRUNCATE TABLE {server_db}.ledger",
        f"DROP TABLE {server_db}.ledger",
        "CREATE USER sneaky IDENTIFIED BY 'x'",
    ):
        assert _refused(analyst, sql), sql
