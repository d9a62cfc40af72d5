"""A one-shard ClickHouse cluster inside chDB, in a child process: runs DDL and queries there.

chDB is ClickHouse's engine without a server, yet it keeps Replicated tables when its config
names a Keeper (ClickHouse's in-memory ``testkeeper``) and the ``{shard}``/``{replica}``
macros, and it keeps Distributed tables over a cluster whose only shard is this very process
(``localhost`` at its own ``tcp_port``: ClickHouse runs a local shard's part in process, with
no network). That is enough to create the cluster form of the schema for real and to run
queries through its Distributed tables. Two things it cannot do, so the caller works around
them: ``ON CLUSTER`` DDL (an embedded engine has no distributed DDL queue: strip the clause)
and inserts into Replicated tables (their replicas stay read-only without a server's
background threads: queries run over empty tables).

A child process, because chDB allows one engine per process and the test session's engine
is open already. The child ends with ``os._exit``: chDB's shutdown with a Keeper hangs.
Protocol: a JSON request on stdin, a JSON answer on stdout (``python -m`` this module).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIMEOUT_S = 180.0

_CONFIG = """<clickhouse>
  <tcp_port>9000</tcp_port>
  <zookeeper><implementation>testkeeper</implementation></zookeeper>
  <macros><shard>01</shard><replica>replica_01</replica></macros>
  <remote_servers>
    <{cluster}>
      <shard>
        <internal_replication>true</internal_replication>
        <replica><host>localhost</host><port>9000</port></replica>
      </shard>
    </{cluster}>
  </remote_servers>
</clickhouse>
"""

_TABLES = (
    "SELECT name, engine, sorting_key, partition_key, engine_full, create_table_query "
    "FROM system.tables WHERE database = {db:String} ORDER BY name"
)


@dataclass(frozen=True)
class ClusterRun:
    """What the child saw: ``system.tables`` rows of the database, and each query's outcome."""

    tables: dict[str, dict[str, str]]
    results: dict[str, dict[str, Any]]


def run_on_one_shard_cluster(
    cluster: str,
    database: str,
    statements: list[str],
    queries: dict[str, tuple[str, dict[str, Any]]],
) -> ClusterRun:
    """Create ``statements`` (no ``ON CLUSTER``) on a fresh one-shard cluster named
    ``cluster``, then run each named ``(sql, parameters)`` query; a query that fails is
    reported with its error, a statement that fails fails the whole run."""
    request = {
        "cluster": cluster,
        "database": database,
        "statements": statements,
        "queries": {name: [sql, params] for name, (sql, params) in queries.items()},
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.cluster_engine"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"the chDB cluster child failed: {done.stderr.strip()[-2000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return ClusterRun(tables=answer["tables"], results=answer["results"])


def _open(cluster: str, workdir: Path) -> Any:
    """The chDB connection of the one-shard cluster; never closed (``os._exit`` ends it)."""
    import chdb

    config = workdir / "config.xml"
    config.write_text(_CONFIG.format(cluster=cluster))
    return chdb.connect(f"file:{workdir / 'data'}?config-file={config}")


def _serve(connection: Any, request: dict[str, Any]) -> dict[str, Any]:
    cursor = connection.cursor()

    def run(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        for name, value in params.items():
            quoted = str(value).replace("\\", "\\\\").replace("'", "\\'")
            cursor.execute(f"SET param_{name} = '{quoted}'")
        cursor.execute(sql)
        columns = [column[0] for column in cursor.description or []]
        return [dict(zip(columns, map(str, row), strict=True)) for row in cursor.fetchall()]

    for statement in request["statements"]:
        run(statement, {})
    results: dict[str, dict[str, Any]] = {}
    for name, (sql, params) in request["queries"].items():
        try:
            results[name] = {"rows": run(sql, params)}
        except Exception as exc:  # reported per query, for the test to name
            results[name] = {"error": str(exc).splitlines()[0]}
    tables = {row["name"]: row for row in run(_TABLES, {"db": request["database"]})}
    return {"tables": tables, "results": results}


if __name__ == "__main__":
    workdir = Path(tempfile.mkdtemp(prefix="chdb-cluster-"))
    try:
        request = json.loads(sys.stdin.read())
        connection = _open(request["cluster"], workdir)
        answer = _serve(connection, request)
    except Exception as exc:
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        status = 1
    else:
        sys.stdout.write(json.dumps(answer) + "\n")
        status = 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # chDB's shutdown with a Keeper hangs; nothing is left to flush
