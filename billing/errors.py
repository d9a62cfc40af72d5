"""The project's one root exception and the billing core's own errors.

Every error the project raises on purpose derives from ``MeteringError`` so a shell
(CLI, worker) can catch that one type and print a single readable line.
"""


class MeteringError(Exception):
    """Root of every deliberate error in the project."""


class CatalogError(MeteringError):
    """The catalog file is broken. Fix the named file and key, then restart."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        super().__init__(f"{source}: {key}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason
