"""The cluster form of the migrations, derived from their single-node statements.

``sql/migrations`` is written once, for one server (and chDB). On a ClickHouse cluster the
same schema needs every table replicated through Keeper, split into shards, and created on
every node; rewriting each file by hand would give two sources of truth that drift apart.
So the runner renders each single-node statement into its cluster form with these rules:

1. ``CREATE DATABASE {db}`` gets ``ON CLUSTER <name>``.
2. ``CREATE TABLE {db}.t (...) ENGINE = <X>MergeTree ...`` becomes two tables:

   * ``{db}.t_local ON CLUSTER <name>``: the same columns, keys and settings on every node,
     engine ``Replicated<X>MergeTree('/clickhouse/tables/{shard}/{db}/t_local', '{replica}')``
     (``{shard}`` and ``{replica}`` are each server's macros), and
     ``non_replicated_deduplication_window`` becomes ``replicated_deduplication_window`` with
     the same value: a retried insert with the same token lands once, as on one node;
   * ``{db}.t ON CLUSTER <name> AS {db}.t_local ENGINE = Distributed(<name>, {db}, t_local,
     cityHash64(account_id))``: the name the sink, the analyst queries and the dashboards use,
     so none of them changes. Tables with an ``account_id`` column are sharded by it: every
     entry of an account lives on one shard, so copies of an entry meet in one
     ReplacingMergeTree and ``FINAL`` (applied per shard) still shows it once. A table without
     ``account_id`` gets no sharding key: its rows are written on the shards by a
     materialized view, never inserted through the Distributed table.
3. ``CREATE MATERIALIZED VIEW {db}.v TO {db}.t AS SELECT ... FROM {db}.s`` gets
   ``ON CLUSTER <name>`` and reads and writes the *local* tables (``TO {db}.t_local``,
   ``FROM {db}.s_local``): each shard rolls up the ledger rows it stores.

Any other statement has no cluster form yet and raises ``ClusterFormError`` naming it, so a
new kind of migration is a deliberate extension here, never a silent single-node statement on
a cluster. The migration history itself is replicated to every node instead (``everywhere``).
Pure text in, text out: no ClickHouse, so it is tested with plain strings (and every rendered
statement is parsed by ClickHouse in ``tests/integration/test_cluster_schema.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from metering.warehouse.errors import MigrationError

LOCAL_SUFFIX = "_local"
SHARDING_KEY = "cityHash64(account_id)"
SHARDED_PATH = "/clickhouse/tables/{shard}/{db}/%s"
EVERYWHERE_PATH = "/clickhouse/tables/all/{db}/%s"
REPLICA = "{replica}"

_FLAGS = re.IGNORECASE | re.DOTALL
_CLUSTER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CREATE_DATABASE = re.compile(
    r"^(CREATE\s+DATABASE\s+(?:IF\s+NOT\s+EXISTS\s+)?\{db\})(.*)$", _FLAGS
)
_CREATE_TABLE = re.compile(
    r"^(CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?)\{db\}\.(\w+)(\s*\(.*)$", _FLAGS
)
_CREATE_VIEW = re.compile(
    r"^(CREATE\s+MATERIALIZED\s+VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?)\{db\}\.(\w+)(.*)$", _FLAGS
)
_ENGINE = re.compile(r"\bENGINE\s*=\s*(\w+)(?:\s*\(([^()]*)\))?", re.IGNORECASE)
_TO_TABLE = re.compile(r"^\s*TO\s+\{db\}\.\w+", re.IGNORECASE)
_TABLE_REFERENCE = re.compile(r"\{db\}\.(\w+)")
_ACCOUNT_COLUMN = re.compile(r"[(,]\s*`?account_id`?\s+[A-Za-z]")
_DEDUP_WINDOW = re.compile(r"\bnon_replicated_deduplication_window\b", re.IGNORECASE)


class ClusterFormError(MigrationError):
    """A migration statement has no cluster form (see ``metering/warehouse/cluster.py``).

    Either write it in a shape the cluster rules know (CREATE DATABASE, CREATE TABLE with a
    MergeTree-family engine, CREATE MATERIALIZED VIEW ... TO), or add a rule there with a test.
    """


def validate_cluster(name: str) -> str:
    """Return ``name`` if it is a plain identifier: it is pasted into DDL."""
    if not _CLUSTER_NAME.fullmatch(name):
        raise ClusterFormError(
            f"cluster name {name!r} is not a plain identifier (letters, digits, underscore)"
        )
    return name


@dataclass(frozen=True)
class Cluster:
    """A ClickHouse cluster as named in the servers' ``remote_servers``."""

    name: str

    def __post_init__(self) -> None:
        validate_cluster(self.name)

    def statements(self, statement: str) -> list[str]:
        """The cluster form of one single-node statement (``{db}`` still in place)."""
        statement = statement.strip()
        if match := _CREATE_DATABASE.match(statement):
            return [f"{match[1]} ON CLUSTER {self.name}{match[2]}"]
        if match := _CREATE_TABLE.match(statement):
            return self._sharded_table(match[1], match[2], match[3])
        if match := _CREATE_VIEW.match(statement):
            return [self._local_view(match[1], match[2], match[3])]
        raise ClusterFormError(f"no cluster form for the statement {_first_line(statement)!r}")

    def everywhere(self, statement: str) -> str:
        """A ``CREATE TABLE`` replicated to every node of the cluster, not sharded.

        For small bookkeeping every node must read whole (the migration history): one Keeper
        path for all shards, so ``{replica}`` must be unique across the whole cluster.
        """
        match = _CREATE_TABLE.match(statement.strip())
        if match is None:
            raise ClusterFormError(f"not a CREATE TABLE: {_first_line(statement)!r}")
        head, table, body = match[1], match[2], match[3]
        replicated = _replicated(body, _merge_tree_engine(body, table), EVERYWHERE_PATH % table)
        return f"{head}{{db}}.{table} ON CLUSTER {self.name}{replicated}"

    def _sharded_table(self, head: str, table: str, body: str) -> list[str]:
        local = f"{table}{LOCAL_SUFFIX}"
        engine = _merge_tree_engine(body, table)
        replicated = _replicated(body, engine, SHARDED_PATH % local)
        sharding = f", {SHARDING_KEY}" if _ACCOUNT_COLUMN.search(body[: engine.start()]) else ""
        return [
            f"{head}{{db}}.{local} ON CLUSTER {self.name}{replicated}",
            f"{head}{{db}}.{table} ON CLUSTER {self.name} AS {{db}}.{local}\n"
            f"ENGINE = Distributed({self.name}, {{db}}, {local}{sharding})",
        ]

    def _local_view(self, head: str, view: str, body: str) -> str:
        if not _TO_TABLE.match(body):
            raise ClusterFormError(
                f"materialized view {view} has no TO table: on a cluster its hidden inner "
                "table would be neither replicated nor sharded; write it as "
                "CREATE MATERIALIZED VIEW ... TO {db}.<table>"
            )
        local_body = _TABLE_REFERENCE.sub(lambda m: f"{{db}}.{m[1]}{LOCAL_SUFFIX}", body)
        return f"{head}{{db}}.{view} ON CLUSTER {self.name}{local_body}"


def _merge_tree_engine(body: str, table: str) -> re.Match[str]:
    """The one ``ENGINE = <X>MergeTree[(args)]`` clause of a table's body."""
    engines = list(_ENGINE.finditer(body))
    if len(engines) != 1:
        raise ClusterFormError(f"table {table} needs exactly one ENGINE clause")
    name = engines[0][1]
    if not name.endswith("MergeTree") or name.startswith("Replicated"):
        raise ClusterFormError(
            f"table {table} has engine {name}: the cluster form replicates single-node "
            "MergeTree-family engines only"
        )
    return engines[0]


def _replicated(body: str, engine: re.Match[str], path: str) -> str:
    """``body`` with ``engine`` made Replicated at Keeper ``path``, and its dedup window kept."""
    name, arguments = engine[1], (engine[2] or "").strip()
    keeper = f"'{path}', '{REPLICA}'" + (f", {arguments}" if arguments else "")
    replaced = f"ENGINE = Replicated{name}({keeper})"
    body = body[: engine.start()] + replaced + body[engine.end() :]
    return _DEDUP_WINDOW.sub("replicated_deduplication_window", body)


def _first_line(statement: str) -> str:
    return statement.strip().splitlines()[0] if statement.strip() else ""
