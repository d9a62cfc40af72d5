"""Errors of the application shell (configuration, services, inputs on the command line)."""

from billing.errors import MeteringError


class ConfigError(MeteringError):
    """A setting is missing or invalid. The message names the environment variable to fix."""


class ServiceUnavailable(MeteringError):
    """Kafka or ClickHouse cannot be reached. Start it, or point the setting at a running one."""


class InputError(MeteringError):
    """A file given on the command line cannot be read or parsed."""


class ConsistencyError(MeteringError):
    """Two derivations of the same bill disagree (ClickHouse against the replay)."""


class IncompleteLog(MeteringError):
    """A topic read from its beginning lost its first records (a time or size retention, or
    deleted records): what is folded or copied from it would silently lack them."""
