-- 0001: the ledger database itself.
--
-- The runner (metering/warehouse/migrations.py) already creates {db} and
-- {db}.schema_migrations before planning, because it must read the history to know
-- whether this file ran. This statement only makes the history start at 0001 and keeps
-- the file safe to run on its own (IF NOT EXISTS). Ledger tables come in 0002 and later.
CREATE DATABASE IF NOT EXISTS {db};
