"""Apply ``sql/access/roles.sql`` (server-mode roles) to a ClickHouse server.

Not a migration: chDB has no access control and a server's app user usually may not create
roles, so it is applied apart, by someone allowed to (see the file's header).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from clickhouse_connect.driver.exceptions import ClickHouseError

from metering.errors import ConfigError
from metering.settings import REPO_ROOT
from metering.warehouse.client import error_reason
from metering.warehouse.migration_plan import render, split_statements

ROLES_FILE: Final = REPO_ROOT / "sql" / "access" / "roles.sql"
ROLES: Final = ("metering_writer", "metering_analyst")


def role_statements(database: str, path: Path = ROLES_FILE) -> list[str]:
    """The file's statements with ``{db}`` replaced, in order."""
    return [render(s, database) for s in split_statements(path.read_text(encoding="utf-8"))]


def apply_roles(client: Any, database: str, path: Path = ROLES_FILE) -> list[str]:
    """Run every statement (each safe to repeat); returns them. Refusals are one line."""
    statements = role_statements(database, path)
    for number, statement in enumerate(statements, start=1):
        try:
            client.command(statement)
        except ClickHouseError as exc:
            raise ConfigError(
                f"{path.name}: statement {number} of {len(statements)} refused "
                f"({error_reason(exc)}); run it as a user with access management "
                "(CLICKHOUSE_URL of an administrator)"
            ) from exc
    return statements
