"""The analyst query pack (``sql/queries/*.sql``) run from Python: the demo's report and tests.

The files stay plain SQL with ClickHouse query parameters (``{db:Identifier}``…), so an
analyst runs the very same text in clickhouse-client; this module only loads and binds them.
"""

from __future__ import annotations

from typing import Any

from clickhouse_connect.driver.client import Client

from metering.settings import REPO_ROOT

QUERIES_DIR = REPO_ROOT / "sql" / "queries"


def query_text(name: str) -> str:
    """``sql/queries/<name>.sql`` ready for clickhouse-connect (the trailing ``;`` removed)."""
    return (QUERIES_DIR / f"{name}.sql").read_text(encoding="utf-8").strip().removesuffix(";")


def run_query(client: Client, name: str, **parameters: Any) -> list[dict[str, Any]]:
    """Run one query of the pack with ClickHouse query parameters; rows as dicts."""
    result = client.query(query_text(name), parameters=parameters)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
