from decimal import Decimal

from metering.audit.diff import diff_entries
from tests.unit.audit.ledger import some_rows


def test_identical_ledgers_have_no_diff() -> None:
    rows = some_rows()
    assert diff_entries(rows, list(reversed(rows))) == []


def test_money_compares_by_value_not_by_scale() -> None:
    rows = some_rows()
    rescaled = [r._replace(charge_usd=r.charge_usd.quantize(Decimal("1E-12"))) for r in rows]
    assert diff_entries(rescaled, rows) == []


def test_each_kind_of_difference_is_named() -> None:
    rows = some_rows()
    lost, altered, *rest = rows
    stored = [altered._replace(charge_usd=altered.charge_usd + 1), *rest]
    stored.append(lost._replace(entry_id="le_forged"))
    found = {d.entry_id: d for d in diff_entries(stored, rows)}
    assert found[lost.entry_id].problem == "missing"
    assert found["le_forged"].problem == "extra"
    changed = found[altered.entry_id]
    assert changed.problem == "different"
    assert [c.field for c in changed.changes] == ["charge_usd"]
    assert "charge_usd: stored" in changed.describe()
    assert len(found) == 3
