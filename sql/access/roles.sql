-- Server-mode roles of the ledger store. NOT a migration, on purpose:
--
-- * ClickHouse has no conditional DDL, and CREATE ROLE needs a user with access management.
--   The embedded store (chDB) has none at all (its only user, `default`, gets ACCESS_DENIED
--   on CREATE ROLE / GRANT: it has no writable user directory), and a server's app user
--   normally has none either (the official image grants it only with
--   CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT=1). As migration 0004 this file would stop
--   `metering store migrate` on both, so it is applied apart, by an administrator:
--   `metering sink roles` (skips chDB with a message, one line of error elsewhere).
-- * Same file rules as migrations: `{db}` is the database, a statement ends at a `;` that
--   ends a line, `--` lines are dropped; every statement is safe to run twice.
-- * Grant these roles to users (`GRANT metering_writer TO sink_user`) and set them as the
--   users' default roles; that part depends on how the server manages users.
--
-- Materialized views run as their definer (SQL SECURITY DEFINER, ClickHouse's default for
-- views since 24.x): an insert into the ledger feeds the rollups without the writer holding
-- any grant on the rollup tables.

-- The sink's role: it appends ledger rows and reads nothing but what it needs to skip
-- entries already stored (flush step 2 in metering/sink/consumer.py): the three key columns
-- of its lookup. No ALTER, no DELETE, no TRUNCATE: the ledger is immutable.
CREATE ROLE IF NOT EXISTS metering_writer;
GRANT INSERT ON {db}.ledger TO metering_writer;
GRANT SELECT(entry_id, account_id, started_at) ON {db}.ledger TO metering_writer;

-- Analysts: read the ledger, the rollups and the migration history; write nothing.
CREATE ROLE IF NOT EXISTS metering_analyst;
GRANT SELECT ON {db}.* TO metering_analyst;
