"""``bench.replay_speed --smoke``: the replay figures next to their floor, and a clean audit.

The bench exits non-zero unless the audit of the simulated account is clean (ClickHouse and
the re-derived ledger agree, in process and through the ``metering audit`` command).
"""

from __future__ import annotations

import pytest

from tests.bench.test_smoke import run_bench

pytestmark = pytest.mark.integration  # the audit's ledger is the real ClickHouse engine (chDB)


def test_replay_speed_measures_each_subject_against_the_parse_floor() -> None:
    out = run_bench("replay_speed", "--smoke")
    for subject in (
        "`json.loads` of each line (the floor)",
        "fold: billing core over records in memory",
        "`metering replay`: read + fold + write",
        "ClickHouse rows",
        "`audit()` as a whole",
        "`metering audit` command, end to end",
        "replay goal (issue #7 item 5)",
        "audit goal (issue #7 item 5)",
        "audit goal (issue #6 item 4)",
    ):
        assert subject in out
    assert "rows equal True, clean True" in out
