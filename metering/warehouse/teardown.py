"""Dropping the ledger and everything derived from it, so the migrations can build it again.

Only ``metering rebuild --fresh`` does this, and only because the rows come back from the
ledger topic (or the raw input log) right after. What goes: ``{db}.ledger``, every
materialized view fed by it, and each view's target table (the rollups). They are found in
``system.tables`` rather than listed here, so a rollup a later migration adds goes too.
The migration history and any other table stay.
"""

from __future__ import annotations

from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from metering.warehouse.migration_plan import validate_database

LEDGER_TABLE = "ledger"

# The views that read the ledger (``dependencies_table`` of the ledger) and where they write.
_VIEWS_SQL = """
SELECT view.name, view.target_database, view.target_table
FROM system.tables AS view
WHERE view.database = {db:String}
  AND view.engine = 'MaterializedView'
  AND has(
      (SELECT any(dependencies_table) FROM system.tables
       WHERE database = {db:String} AND name = {ledger:String}),
      view.name)
ORDER BY view.name
"""


@dataclass(frozen=True)
class LedgerObjects:
    """What ``drop_ledger`` removes, in the order it removes it."""

    views: tuple[str, ...]
    rollups: tuple[str, ...]
    ledger: bool

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.views, *self.rollups, *((LEDGER_TABLE,) if self.ledger else ()))


def ledger_objects(client: Client, database: str) -> LedgerObjects:
    """The ledger, the views it feeds and their rollup tables, as they exist now."""
    db = validate_database(database)
    rows = client.query(_VIEWS_SQL, parameters={"db": db, "ledger": LEDGER_TABLE}).result_rows
    exists = client.command(f"EXISTS TABLE {db}.{LEDGER_TABLE}") in (1, "1")
    return LedgerObjects(
        views=tuple(str(name) for name, _, _ in rows),
        rollups=tuple(str(target) for _, target_db, target in rows if target_db == db and target),
        ledger=exists,
    )


def drop_ledger(client: Client, database: str) -> LedgerObjects:
    """Drop the views first (so nothing writes into a half-dropped rollup), then the rollup
    tables, then the ledger; ``SYNC`` so a table created again at once under the same name
    starts empty, with an empty insert-deduplication log. Returns what was dropped."""
    db = validate_database(database)
    found = ledger_objects(client, db)
    for view in found.views:
        client.command(f"DROP VIEW IF EXISTS {db}.{view} SYNC")
    for table in (*found.rollups, *((LEDGER_TABLE,) if found.ledger else ())):
        client.command(f"DROP TABLE IF EXISTS {db}.{table} SYNC")
    return found
