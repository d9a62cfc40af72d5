"""Migration planning without ClickHouse: file names, ordering, pending, checksums, splitting."""

from __future__ import annotations

import pytest

from metering.errors import ConfigError
from metering.warehouse.errors import MigrationFileError, MigrationHistoryError
from metering.warehouse.migration_plan import (
    AppliedMigration,
    MigrationFile,
    MigrationState,
    checksum,
    parse_file,
    parse_files,
    plan,
    render,
    split_statements,
)

CREATE_DB = b"CREATE DATABASE IF NOT EXISTS {db};\n"


def migration(filename: str, sql: bytes = CREATE_DB) -> MigrationFile:
    return parse_file(filename, sql)


def applied(file: MigrationFile, *, sha: str | None = None) -> AppliedMigration:
    return AppliedMigration(file.version, file.name, sha or file.checksum)


# --- file names and ordering -------------------------------------------------------------


def test_files_are_ordered_by_number_not_by_listing_order() -> None:
    # given a directory listed in an arbitrary order
    listing = {
        "0010_rollups.sql": CREATE_DB,
        "0002_ledger.sql": CREATE_DB,
        "0001_schema_migrations.sql": CREATE_DB,
    }
    # when it is parsed
    files = parse_files(listing)
    # then the migrations come in numeric order with version and slug split out
    assert [(f.version, f.name) for f in files] == [
        (1, "schema_migrations"),
        (2, "ledger"),
        (10, "rollups"),
    ]


def test_notes_and_hidden_files_beside_migrations_are_ignored() -> None:
    files = parse_files({"README.md": b"# notes", ".DS_Store": b"\0", "0001_a.sql": CREATE_DB})
    assert [f.filename for f in files] == ["0001_a.sql"]


@pytest.mark.parametrize(
    "filename",
    [
        "1_ledger.sql",  # number not 4 digits
        "00001_ledger.sql",  # 5 digits
        "0002-ledger.sql",  # dash instead of underscore
        "0002_Ledger.sql",  # uppercase slug
        "0002_.sql",  # empty slug
        "0002_ledger.SQL",  # extension case
        "0002_ledger.sq",  # typo in extension
        "0002_ledger entries.sql",  # space
        "ledger.sql",  # no number
    ],
)
def test_badly_named_files_are_rejected_with_the_expected_pattern(filename: str) -> None:
    with pytest.raises(MigrationFileError, match=r"NNNN_<slug>\.sql") as caught:
        parse_files({filename: CREATE_DB})
    assert filename in str(caught.value)


def test_number_zero_is_rejected() -> None:
    with pytest.raises(MigrationFileError, match="start at 0001"):
        parse_file("0000_init.sql", CREATE_DB)


def test_two_files_with_one_number_are_rejected() -> None:
    with pytest.raises(MigrationFileError, match="share number 0002"):
        parse_files({"0002_a.sql": CREATE_DB, "0002_b.sql": CREATE_DB})


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"-- only a comment\n\n", "no SQL statement"),
        (b";\n", "no SQL statement"),
        (b"\xff\xfeCREATE", "not UTF-8"),
    ],
)
def test_unusable_file_content_is_rejected(content: bytes, reason: str) -> None:
    with pytest.raises(MigrationFileError, match=reason):
        parse_file("0003_x.sql", content)


# --- statement splitting -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "statements"),
    [
        ("SELECT 1;", ["SELECT 1"]),
        ("SELECT 1;\nSELECT 2;\n", ["SELECT 1", "SELECT 2"]),
        ("SELECT 1", ["SELECT 1"]),  # a final statement needs no ';'
        ("SELECT 1;\nSELECT 2", ["SELECT 1", "SELECT 2"]),
        (
            "CREATE TABLE t\n(\n    a UInt8\n)\nENGINE = Memory;\n",
            ["CREATE TABLE t\n(\n    a UInt8\n)\nENGINE = Memory"],
        ),
        # comment lines vanish, also when indented or between the lines of a statement
        ("-- header; with a semicolon;\nSELECT 1;\n", ["SELECT 1"]),
        ("SELECT\n    -- why;\n    1;\n", ["SELECT\n    1"]),
        # a ';' inside a line does not split, only one that ends the line
        ("SELECT ';' AS s, 1;\n", ["SELECT ';' AS s, 1"]),
        ("SELECT 1; -- trailing comment\nSELECT 2;\n", ["SELECT 1; -- trailing comment\nSELECT 2"]),
        # trailing whitespace after ';' still ends the statement; empty statements vanish
        ("SELECT 1;   \n;\n\n", ["SELECT 1"]),
        ("", []),
    ],
)
def test_statements_split_on_semicolons_ending_a_line(sql: str, statements: list[str]) -> None:
    assert split_statements(sql) == statements


def test_the_database_placeholder_is_replaced_and_other_braces_are_kept() -> None:
    # given a statement holding {db} and a map literal
    statement = "INSERT INTO {db}.t SELECT {'k': 1}"
    # when it is rendered for database "ledger"
    # then only the placeholder changes
    assert render(statement, "ledger") == "INSERT INTO ledger.t SELECT {'k': 1}"


@pytest.mark.parametrize("database", ["", "1db", "db-name", "db; DROP TABLE x", "db.x"])
def test_database_names_that_are_not_identifiers_are_refused(database: str) -> None:
    with pytest.raises(ConfigError, match="not a plain identifier"):
        render("CREATE DATABASE {db}", database)


def test_file_statements_are_rendered_for_the_database() -> None:
    file = migration("0002_t.sql", b"CREATE TABLE {db}.t (a UInt8) ENGINE = Memory;\n")
    assert file.statements("m") == ["CREATE TABLE m.t (a UInt8) ENGINE = Memory"]


def test_checksum_is_sha256_of_the_exact_bytes() -> None:
    assert checksum(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert checksum(b"SELECT 1;\n") != checksum(b"SELECT 1;\r\n")


# --- planning ----------------------------------------------------------------------------


def test_a_fresh_store_has_every_file_pending_in_order() -> None:
    files = parse_files({"0002_b.sql": CREATE_DB, "0001_a.sql": CREATE_DB})
    result = plan(files, applied=[])
    assert [f.version for f in result.pending] == [1, 2]
    assert result.problems() == []


def test_only_files_above_the_applied_history_are_pending() -> None:
    # given 0001 and 0002 applied and 0003 new
    one, two, three = (migration(f"000{n}_m{n}.sql") for n in (1, 2, 3))
    # when planned
    result = plan([three, one, two], [applied(one), applied(two)])
    # then only 0003 is pending and the rest is applied
    assert [f.version for f in result.pending] == [3]
    assert [e.state for e in result.entries] == [
        MigrationState.APPLIED,
        MigrationState.APPLIED,
        MigrationState.PENDING,
    ]


def test_everything_applied_means_nothing_pending() -> None:
    one = migration("0001_a.sql")
    result = plan([one], [applied(one)])
    assert result.pending == ()
    result.raise_for_problems()  # does not raise


def test_a_changed_applied_file_is_refused_never_reapplied() -> None:
    # given 0001 applied from other bytes than the file now holds
    one = migration("0001_a.sql", b"CREATE DATABASE IF NOT EXISTS {db}; -- edited\n")
    history = [applied(one, sha=checksum(CREATE_DB))]
    # when planned
    result = plan([one], history)
    # then it is flagged as changed, not pending, and migrating is refused naming the file
    assert result.entries[0].state is MigrationState.CHANGED
    assert result.pending == ()
    with pytest.raises(MigrationHistoryError, match=r"0001_a\.sql changed after it was applied"):
        result.raise_for_problems()


def test_an_applied_migration_whose_file_is_gone_is_refused() -> None:
    one = migration("0001_a.sql")
    gone = AppliedMigration(2, "dropped", "ab" * 32)
    result = plan([one], [applied(one), gone])
    assert result.entries[1].state is MigrationState.MISSING
    with pytest.raises(
        MigrationHistoryError, match="0002_dropped was applied but its file is gone"
    ):
        result.raise_for_problems()


def test_a_new_file_numbered_below_an_applied_one_is_refused() -> None:
    # given 0001 and 0003 applied, then 0002 added late (a merge of two branches)
    one, two, three = (migration(f"000{n}_m{n}.sql") for n in (1, 2, 3))
    result = plan([one, two, three], [applied(one), applied(three)])
    # then 0002 is not silently applied after 0003
    assert result.entries[1].state is MigrationState.OUT_OF_ORDER
    assert result.pending == ()
    with pytest.raises(MigrationHistoryError, match="numbered below an applied migration"):
        result.raise_for_problems()


def test_a_repeated_history_row_counts_once() -> None:
    one = migration("0001_a.sql")
    result = plan([one], [applied(one), applied(one)])
    assert [e.state for e in result.entries] == [MigrationState.APPLIED]
