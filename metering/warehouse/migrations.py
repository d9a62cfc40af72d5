"""Apply ``sql/migrations/NNNN_<slug>.sql`` to the ledger store, once each, in number order.

The applied history lives in ``<db>.schema_migrations``, created here. Planning (what is
pending, what changed) is pure and lives in ``migration_plan``; this module only reads the
directory, talks to ClickHouse and records what it applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from metering.errors import ServiceUnavailable
from metering.settings import REPO_ROOT
from metering.warehouse.client import error_reason
from metering.warehouse.cluster import Cluster
from metering.warehouse.errors import MigrationApplyError, MigrationError, MigrationFileError
from metering.warehouse.migration_plan import (
    AppliedMigration,
    MigrationFile,
    MigrationPlan,
    MigrationState,
    parse_files,
    plan,
    validate_database,
)

logger = logging.getLogger(__name__)

DEFAULT_MIGRATIONS_DIR = REPO_ROOT / "sql" / "migrations"
DEFAULT_DATABASE = "metering"
HISTORY_TABLE = "schema_migrations"

# One row per applied migration. MergeTree because the table is tiny and read whole; ORDER BY
# version only orders it. checksum is the sha256 hex of the file's bytes as applied.
_HISTORY_DDL = """
CREATE TABLE IF NOT EXISTS {db}.schema_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY version
"""
# The cluster form: one Keeper path for all nodes, so every node reads the whole history and
# `migrate` may run against any of them (metering/warehouse/cluster.py, Cluster.everywhere).
_HISTORY_COLUMNS = ("version", "name", "checksum", "applied_at")
_HISTORY_TYPES = ("UInt32", "String", "String", "DateTime64(3, 'UTC')")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def read_migrations(migrations_dir: Path = DEFAULT_MIGRATIONS_DIR) -> list[MigrationFile]:
    """Parse every migration file in ``migrations_dir`` (sorted by number)."""
    if not migrations_dir.is_dir():
        raise MigrationFileError(f"{migrations_dir}: migrations directory not found")
    contents = {p.name: p.read_bytes() for p in migrations_dir.iterdir() if p.is_file()}
    try:
        return parse_files(contents)
    except MigrationFileError as exc:
        raise MigrationFileError(f"{migrations_dir}/{exc}") from exc


def read_applied(client: Client, database: str = DEFAULT_DATABASE) -> list[AppliedMigration]:
    """The applied history, oldest version first; empty when the table does not exist yet."""
    db = validate_database(database)
    with _store_errors():
        if client.command(f"EXISTS TABLE {db}.{HISTORY_TABLE}") not in (1, "1"):
            return []
        # applied_at as epoch ms: chDB may drop the zone when decoding DateTime64('UTC').
        rows = client.query(
            f"SELECT version, name, checksum, toUnixTimestamp64Milli(applied_at) "
            f"FROM {db}.{HISTORY_TABLE} ORDER BY version, applied_at"
        ).result_rows
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return [
        AppliedMigration(int(v), str(n), str(c), epoch + timedelta(milliseconds=int(ms)))
        for v, n, c, ms in rows
    ]


def status(
    client: Client,
    migrations_dir: Path = DEFAULT_MIGRATIONS_DIR,
    database: str = DEFAULT_DATABASE,
) -> MigrationPlan:
    """Compare files and history without changing anything (problems are reported, not raised)."""
    files = read_migrations(migrations_dir)
    return plan(files, read_applied(client, database))


def migrate(
    client: Client,
    migrations_dir: Path = DEFAULT_MIGRATIONS_DIR,
    database: str = DEFAULT_DATABASE,
    now: Callable[[], datetime] = _utc_now,
    cluster: str = "",
) -> list[int]:
    """Apply the pending migrations and return their versions (empty when up to date).

    ``cluster`` names the ClickHouse cluster to apply the files' cluster form to (``ON
    CLUSTER``, replicated and distributed tables: ``cluster.py``); empty = one server.

    1. Validate the database name and parse every file (nothing touched if one is bad).
    2. Refuse a store whose history was created in the other form (single node vs cluster);
       create the database and ``schema_migrations`` if absent.
    3. Read the history and plan; refuse if an applied file changed or vanished, or a new
       file is numbered below an applied one.
    4. For each pending file in order: run its statements, then record its row. A failed
       statement stops the run with that file unrecorded.
    """
    # Step 1.
    db = validate_database(database)
    files = read_migrations(migrations_dir)
    with _store_errors():
        # Step 2.
        form = Cluster(cluster) if cluster else None
        _check_form(client, db, form)
        if form is None:
            client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
            client.command(_HISTORY_DDL.replace("{db}", db))
        else:
            client.command(f"CREATE DATABASE IF NOT EXISTS {db} ON CLUSTER {form.name}")
            client.command(form.everywhere(_HISTORY_DDL).replace("{db}", db))
        # Step 3.
        current = plan(files, read_applied(client, db))
        current.raise_for_problems()
        # Step 4.
        applied: list[int] = []
        for migration in current.pending:
            _apply(client, migration, db, cluster)
            client.insert(
                HISTORY_TABLE,
                [[migration.version, migration.name, migration.checksum, now()]],
                database=db,
                column_names=list(_HISTORY_COLUMNS),
                column_type_names=list(_HISTORY_TYPES),
            )
            logger.info("applied migration %s to database %s", migration.filename, db)
            applied.append(migration.version)
    return applied


def reapply(
    client: Client,
    migrations_dir: Path = DEFAULT_MIGRATIONS_DIR,
    database: str = DEFAULT_DATABASE,
    cluster: str = "",
) -> list[int]:
    """Run every applied migration's statements again, in order, recording nothing new.

    This recreates objects dropped since they were applied (``metering rebuild --fresh``
    drops the ledger and its rollups; the history still lists their migrations). Every
    statement is safe to run twice (sql/README.md, rule 4), so on a complete schema it
    changes nothing. Refuses, like ``migrate``, when the history disagrees with the files.
    Returns the versions run.
    """
    db = validate_database(database)
    current = status(client, migrations_dir, db)
    current.raise_for_problems()
    applied = [e.file for e in current.entries if e.state is MigrationState.APPLIED and e.file]
    for migration in applied:
        _apply(client, migration, db, cluster)
    return [migration.version for migration in applied]


def _check_form(client: Client, database: str, form: Cluster | None) -> None:
    """Refuse to mix forms: a history made on one server means single-node tables, and the
    reverse; the files' checksums are the same in both, so the plan alone cannot tell.
    A store without a history yet takes either form."""
    engine = client.command(
        "SELECT engine FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": HISTORY_TABLE},
    )
    if not engine:
        return
    replicated = str(engine).startswith("Replicated")
    if form is not None and not replicated:
        raise MigrationError(
            f"{database} was migrated as a single-node store ({HISTORY_TABLE} is {engine}): "
            f"the cluster form for {form.name} needs a new database (--database) filled by "
            "`metering rebuild`, or unset METERING_CLICKHOUSE_CLUSTER"
        )
    if form is None and replicated:
        raise MigrationError(
            f"{database} was migrated in its cluster form ({HISTORY_TABLE} is {engine}): "
            "set METERING_CLICKHOUSE_CLUSTER to the cluster's name"
        )


def _apply(client: Client, migration: MigrationFile, database: str, cluster: str = "") -> None:
    statements = migration.statements(database, cluster)
    for number, statement in enumerate(statements, start=1):
        try:
            client.command(statement)
        except OperationalError as exc:
            raise ServiceUnavailable(
                f"ClickHouse unreachable during {migration.filename}: {error_reason(exc)}"
            ) from exc
        except ClickHouseError as exc:
            raise MigrationApplyError(
                f"{migration.filename}: statement {number} of {len(statements)} failed "
                f"({error_reason(exc)}); the migration was not recorded"
            ) from exc


@contextmanager
def _store_errors() -> Iterator[None]:
    """Turn driver errors of the runner's own statements into one-line project errors."""
    try:
        yield
    except OperationalError as exc:
        raise ServiceUnavailable(
            f"ClickHouse unreachable while migrating: {error_reason(exc)}"
        ) from exc
    except ClickHouseError as exc:
        raise MigrationError(
            f"ClickHouse refused the migration bookkeeping: {error_reason(exc)}"
        ) from exc
