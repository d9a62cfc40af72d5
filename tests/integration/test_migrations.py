"""The migration runner against a real engine: applied once, idempotent, refuses edited files."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from metering.warehouse import MigrationState, migrate, status
from metering.warehouse.errors import MigrationApplyError, MigrationHistoryError

pytestmark = pytest.mark.integration

LEDGER = """\
-- A table with a comment line and two statements.
CREATE TABLE IF NOT EXISTS {db}.entries
(
    entry_id String,
    amount Decimal(38, 12)
)
ENGINE = MergeTree
ORDER BY entry_id;

INSERT INTO {db}.entries VALUES ('seed', 1.5);
"""


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_schema_migrations.sql").write_text("CREATE DATABASE IF NOT EXISTS {db};\n")
    (folder / "0002_entries.sql").write_text(LEDGER)
    return folder


def tables(client: Any, database: str) -> list[tuple[str, str]]:
    query = "SELECT name, create_table_query FROM system.tables WHERE database = {d:String}"
    rows = client.query(query + " ORDER BY name", parameters={"d": database}).result_rows
    return [(str(name), str(ddl)) for name, ddl in rows]


def test_migrating_twice_applies_each_file_once(
    clickhouse_client: Any, clickhouse_database: str, migrations_dir: Path
) -> None:
    # given a fresh database and two migration files
    # when migrated
    first = migrate(clickhouse_client, migrations_dir=migrations_dir, database=clickhouse_database)
    after_first = tables(clickhouse_client, clickhouse_database)
    # then both are applied in order and recorded
    assert first == [1, 2]
    assert [name for name, _ in after_first] == ["entries", "schema_migrations"]

    # when migrated again
    second = migrate(clickhouse_client, migrations_dir=migrations_dir, database=clickhouse_database)
    # then nothing runs: same tables, the seed row inserted once, two history rows
    assert second == []
    assert tables(clickhouse_client, clickhouse_database) == after_first
    count = f"SELECT count() FROM {clickhouse_database}.entries"
    assert clickhouse_client.query(count).result_rows[0][0] == 1
    history = f"SELECT version, name FROM {clickhouse_database}.schema_migrations ORDER BY version"
    assert clickhouse_client.query(history).result_rows == [
        (1, "schema_migrations"),
        (2, "entries"),
    ]
    current = status(clickhouse_client, migrations_dir=migrations_dir, database=clickhouse_database)
    assert [e.state for e in current.entries] == [MigrationState.APPLIED] * 2


def test_a_new_file_is_applied_on_the_next_run(
    clickhouse_client: Any, clickhouse_database: str, migrations_dir: Path
) -> None:
    migrate(clickhouse_client, migrations_dir=migrations_dir, database=clickhouse_database)
    (migrations_dir / "0003_more.sql").write_text(
        "ALTER TABLE {db}.entries ADD COLUMN IF NOT EXISTS note String;\n"
    )
    current = status(clickhouse_client, migrations_dir=migrations_dir, database=clickhouse_database)
    assert [f.version for f in current.pending] == [3]
    assert migrate(
        clickhouse_client, migrations_dir=migrations_dir, database=clickhouse_database
    ) == [3]


def test_an_applied_file_that_changed_is_refused(
    clickhouse_client: Any, clickhouse_database: str, migrations_dir: Path
) -> None:
    # given the migrations applied
    migrate(clickhouse_client, migrations_dir=migrations_dir, database=clickhouse_database)
    before = tables(clickhouse_client, clickhouse_database)
    # when an applied file is edited in place
    edited = migrations_dir / "0002_entries.sql"
    edited.write_text(LEDGER.replace("1.5", "2.5"))
    # then migrating refuses, naming the file, and changes nothing
    with pytest.raises(
        MigrationHistoryError, match=r"0002_entries\.sql changed after it was applied"
    ):
        migrate(clickhouse_client, migrations_dir=migrations_dir, database=clickhouse_database)
    assert tables(clickhouse_client, clickhouse_database) == before
    amounts = f"SELECT amount FROM {clickhouse_database}.entries"
    assert [a for (a,) in clickhouse_client.query(amounts).result_rows] == [Decimal("1.5")]
    # and status shows the conflict without raising
    current = status(clickhouse_client, migrations_dir=migrations_dir, database=clickhouse_database)
    assert current.entries[1].state is MigrationState.CHANGED


def test_a_failing_statement_stops_the_run_unrecorded(
    clickhouse_client: Any, clickhouse_database: str, migrations_dir: Path
) -> None:
    # given a pending file whose second statement is broken
    (migrations_dir / "0003_broken.sql").write_text(
        "CREATE TABLE IF NOT EXISTS {db}.ok (a UInt8) ENGINE = Memory;\nSELEC 1;\n"
    )
    # when migrated
    with pytest.raises(MigrationApplyError, match=r"0003_broken\.sql: statement 2 of 2 failed"):
        migrate(clickhouse_client, migrations_dir=migrations_dir, database=clickhouse_database)
    # then the files before it are recorded and it stays pending
    current = status(clickhouse_client, migrations_dir=migrations_dir, database=clickhouse_database)
    assert [e.state for e in current.entries] == [
        MigrationState.APPLIED,
        MigrationState.APPLIED,
        MigrationState.PENDING,
    ]


def test_status_of_a_never_migrated_database_changes_nothing(
    clickhouse_client: Any, clickhouse_database: str, migrations_dir: Path
) -> None:
    current = status(clickhouse_client, migrations_dir=migrations_dir, database=clickhouse_database)
    assert [f.version for f in current.pending] == [1, 2]
    assert tables(clickhouse_client, clickhouse_database) == []


def test_the_database_is_created_when_absent(
    clickhouse_client: Any, clickhouse_database: str, migrations_dir: Path
) -> None:
    # given a database name that does not exist yet (derived from the per-test one)
    fresh = f"{clickhouse_database}_new"
    try:
        # when migrated into it, then it is created and holds the tables
        assert migrate(clickhouse_client, migrations_dir=migrations_dir, database=fresh) == [1, 2]
        assert [name for name, _ in tables(clickhouse_client, fresh)] == [
            "entries",
            "schema_migrations",
        ]
    finally:
        clickhouse_client.command(f"DROP DATABASE IF EXISTS {fresh} SYNC")


def test_the_shipped_migrations_apply(clickhouse_client: Any, clickhouse_database: str) -> None:
    # given the repository's sql/migrations, when applied twice, then the second run is a no-op
    first = migrate(clickhouse_client, database=clickhouse_database)
    assert first[0] == 1
    assert migrate(clickhouse_client, database=clickhouse_database) == []
