"""Errors of the ledger store's migration runner, all under the project's ``MeteringError``.

Connection problems use the shell's ``ConfigError`` / ``ServiceUnavailable``; these are the
errors only migrations can raise, each saying what the operator must do.
"""

from __future__ import annotations

from billing.errors import MeteringError


class MigrationError(MeteringError):
    """The migrations cannot be planned or applied. The message names the file to fix."""


class MigrationFileError(MigrationError):
    """A file in the migrations directory is misnamed, duplicated, unreadable or empty.

    Rename it to ``NNNN_<slug>.sql`` (4 digits, lowercase slug) with a unique number.
    """


class MigrationHistoryError(MigrationError):
    """The applied history disagrees with the files: an applied file changed or disappeared,
    or a new file is numbered below an applied one.

    Migrations are append-only: restore the applied file as it was and put the change in a
    new migration with the next number.
    """


class MigrationApplyError(MigrationError):
    """A statement of a pending migration failed; the migration was not recorded.

    ClickHouse DDL is not transactional: earlier statements of that file may have run.
    Fix the file (its statements should be idempotent, ``IF NOT EXISTS``) and migrate again.
    """
