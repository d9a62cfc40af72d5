"""Dead letters for operators: read ``metering.dlq`` back, republish the ones whose cause is fixed."""

from metering.dlq.letters import Letter, Letters, read_letters, select
from metering.dlq.resubmit import parse_source, resubmit, unreplayable

__all__ = [
    "Letter",
    "Letters",
    "parse_source",
    "read_letters",
    "resubmit",
    "select",
    "unreplayable",
]
