"""Pure planning of schema migrations: parse files, split statements, decide what runs next.

Kept free of I/O (no ClickHouse, no filesystem, no clock) so ordering, checksum checks and
statement splitting are tested with plain values; ``migrations.py`` does the reading and
applying.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from metering.errors import ConfigError
from metering.warehouse.cluster import Cluster
from metering.warehouse.errors import MigrationFileError, MigrationHistoryError

MIGRATION_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<slug>[a-z0-9]+(?:_[a-z0-9]+)*)\.sql$")
DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DB_PLACEHOLDER = "{db}"


def checksum(content: bytes) -> str:
    """SHA-256 hex of a file's exact bytes: any edit, even whitespace, is a change."""
    return hashlib.sha256(content).hexdigest()


def validate_database(name: str) -> str:
    """Return ``name`` if it is a plain identifier; it is pasted into SQL, so nothing else."""
    if not DATABASE_NAME.fullmatch(name):
        raise ConfigError(
            f"database name {name!r} is not a plain identifier (letters, digits, underscore)"
        )
    return name


def split_statements(sql: str) -> list[str]:
    """Split a migration into statements.

    A statement ends at a ``;`` that ends a line; lines whose first non-blank characters are
    ``--`` are dropped. A ``;`` followed by a comment on the same line does not end a
    statement. Text after the last ``;`` is a final statement.
    """
    statements: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        if line.lstrip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            _flush(current, statements)
            current = []
    _flush(current, statements)
    return statements


def _flush(lines: list[str], statements: list[str]) -> None:
    statement = "\n".join(lines).strip().removesuffix(";").strip()
    if statement:
        statements.append(statement)


def render(statement: str, database: str) -> str:
    """Put the database name in place of ``{db}`` (plain replace: SQL may hold other braces)."""
    return statement.replace(DB_PLACEHOLDER, validate_database(database))


@dataclass(frozen=True)
class MigrationFile:
    """One ``NNNN_<slug>.sql`` file, parsed."""

    version: int
    name: str
    filename: str
    sql: str
    checksum: str

    def statements(self, database: str, cluster: str = "") -> list[str]:
        """The file's statements with ``{db}`` replaced, in file order.

        With a ``cluster`` name, each statement in its cluster form (``cluster.py``): one file,
        two forms, the applied checksum the same for both.
        """
        statements = split_statements(self.sql)
        if cluster:
            form = Cluster(cluster)
            statements = [rendered for s in statements for rendered in form.statements(s)]
        return [render(statement, database) for statement in statements]


def is_migration_candidate(filename: str) -> bool:
    """Hidden files and notes (``*.md``) may sit beside migrations; every other file counts."""
    return not filename.startswith(".") and not filename.endswith(".md")


def parse_file(filename: str, content: bytes) -> MigrationFile:
    """Parse one migration file; a wrong name, bad encoding or no statement is an error."""
    match = MIGRATION_FILE_NAME.fullmatch(filename)
    if match is None:
        raise MigrationFileError(
            f"{filename}: migration files are named NNNN_<slug>.sql "
            "(4 digits, lowercase letters/digits/underscores), e.g. 0002_ledger_entries.sql"
        )
    version = int(match["version"])
    if version == 0:
        raise MigrationFileError(f"{filename}: migration numbers start at 0001")
    try:
        sql = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MigrationFileError(f"{filename}: not UTF-8 ({exc.reason})") from exc
    if not split_statements(sql):
        raise MigrationFileError(f"{filename}: contains no SQL statement")
    return MigrationFile(
        version=version,
        name=match["slug"],
        filename=filename,
        sql=sql,
        checksum=checksum(content),
    )


def parse_files(contents: Mapping[str, bytes]) -> list[MigrationFile]:
    """Parse a directory listing (file name → bytes) into migrations sorted by number."""
    files = [
        parse_file(filename, content)
        for filename, content in contents.items()
        if is_migration_candidate(filename)
    ]
    files.sort(key=lambda f: f.version)
    for before, after in itertools.pairwise(files):
        if before.version == after.version:
            raise MigrationFileError(
                f"{before.filename} and {after.filename} share number {before.version:04d}; "
                "give the newer one the next free number"
            )
    return files


@dataclass(frozen=True)
class AppliedMigration:
    """One row of ``schema_migrations``."""

    version: int
    name: str
    checksum: str
    applied_at: datetime | None = None


class MigrationState(StrEnum):
    """Where one migration stands, comparing the files with the applied history."""

    APPLIED = "applied"
    PENDING = "pending"
    CHANGED = "changed"  # applied, but the file's bytes differ from what was applied
    MISSING = "missing"  # applied, but no file has that number any more
    OUT_OF_ORDER = "out of order"  # not applied, numbered below an applied migration


@dataclass(frozen=True)
class PlanEntry:
    """One version in the plan, with its file and/or its history row."""

    version: int
    name: str
    state: MigrationState
    file: MigrationFile | None = None
    applied: AppliedMigration | None = None

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    def problem(self) -> str | None:
        """Why this entry blocks migrating, or None."""
        if self.state is MigrationState.CHANGED:
            assert self.file is not None and self.applied is not None
            return (
                f"{self.file.filename} changed after it was applied (sha256 "
                f"{self.applied.checksum[:12]}… applied, {self.file.checksum[:12]}… on disk)"
            )
        if self.state is MigrationState.MISSING:
            return f"{self.label} was applied but its file is gone"
        if self.state is MigrationState.OUT_OF_ORDER:
            assert self.file is not None
            return f"{self.file.filename} is new but numbered below an applied migration"
        return None


@dataclass(frozen=True)
class MigrationPlan:
    """Every known version in order, and what ``migrate`` would do with it."""

    entries: tuple[PlanEntry, ...]

    @property
    def pending(self) -> tuple[MigrationFile, ...]:
        return tuple(
            entry.file
            for entry in self.entries
            if entry.state is MigrationState.PENDING and entry.file is not None
        )

    def problems(self) -> list[str]:
        return [p for p in (entry.problem() for entry in self.entries) if p is not None]

    def raise_for_problems(self) -> None:
        """Refuse to migrate when the history and the files disagree (never re-apply)."""
        problems = self.problems()
        if problems:
            raise MigrationHistoryError(
                "; ".join(problems)
                + ". Migrations are append-only: restore applied files and add new ones"
                " with the next number"
            )


def plan(files: Sequence[MigrationFile], applied: Iterable[AppliedMigration]) -> MigrationPlan:
    """Compare the files with the applied history (first row wins if a version repeats)."""
    by_file = {f.version: f for f in files}
    by_history: dict[int, AppliedMigration] = {}
    for history_row in applied:
        by_history.setdefault(history_row.version, history_row)
    last_applied = max(by_history, default=0)
    entries = []
    for version in sorted(by_file.keys() | by_history.keys()):
        file, row = by_file.get(version), by_history.get(version)
        if file is not None and row is not None:
            same = file.checksum == row.checksum
            state = MigrationState.APPLIED if same else MigrationState.CHANGED
        elif row is not None:
            state = MigrationState.MISSING
        elif version < last_applied:
            state = MigrationState.OUT_OF_ORDER
        else:
            state = MigrationState.PENDING
        name = file.name if file is not None else row.name if row is not None else ""
        entries.append(PlanEntry(version, name, state, file=file, applied=row))
    return MigrationPlan(tuple(entries))
