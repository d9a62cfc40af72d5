"""The ClickHouse ledger store: one URL opens chDB (embedded) or a server; migrations set it up.

See README.md in this folder for what it owns and what it does not guarantee.
"""

from metering.warehouse.client import connect, parse_url, release
from metering.warehouse.migration_plan import MigrationPlan, MigrationState
from metering.warehouse.migrations import DEFAULT_DATABASE, DEFAULT_MIGRATIONS_DIR, migrate, status

__all__ = [
    "DEFAULT_DATABASE",
    "DEFAULT_MIGRATIONS_DIR",
    "MigrationPlan",
    "MigrationState",
    "connect",
    "migrate",
    "parse_url",
    "release",
    "status",
]
