"""The simulator's errors, under the project's one root ``MeteringError``."""

from __future__ import annotations

from billing.errors import MeteringError


class SimulationError(MeteringError):
    """Root of the simulator's deliberate errors."""


class SimulationConfigError(SimulationError):
    """A simulation option is out of range. The message names the option: fix it and rerun."""
