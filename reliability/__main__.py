"""``python -m reliability …`` is ``metering chaos …`` (one CLI, one error convention)."""

import sys

from metering.cli.app import main

sys.argv[1:1] = ["chaos"]
main()
