from decimal import Decimal

from billing.catalog import load_catalog
from metering.audit.derive import derive
from metering.audit.span import month_span
from metering.audit.statement import build_statement, canonical, plain, statement_hash
from tests.unit.audit.ledger import ACCOUNT, log

NOVEMBER = month_span("2026-11")


def statement_of_log() -> tuple[dict, list]:  # type: ignore[type-arg]
    derivation = derive(log(), ACCOUNT, load_catalog())
    rows = derivation.rows
    return build_statement(ACCOUNT, NOVEMBER, rows, derivation.windows), rows


def test_the_statement_adds_up_to_the_ledger() -> None:
    statement, rows = statement_of_log()
    totals = statement["totals"]
    assert totals["entries"] == len(rows) == totals["charges"] + totals["corrections"]
    assert totals["corrections"] == 1
    assert totals["flows"] == sum(r.flows for r in rows)
    assert sum(m["requests"] for m in statement["models"]) == totals["charges"]
    assert sum(m["flows"] for m in statement["models"]) - Decimal("0.5") == totals["flows"]
    by_source = {f["source"]: f for f in statement["funding"]}
    assert sum(f["entries"] for f in by_source.values()) == totals["entries"]
    # the 5h window exhausts, the fallback key takes over, one request is payg by choice
    assert by_source["fallback"]["entries"] > 0
    assert by_source["payg"]["entries"] == 1
    assert statement["corrections"][0]["flows"] == Decimal("-0.5")


def test_windows_show_their_exhaustion_and_what_the_span_debited() -> None:
    statement, rows = statement_of_log()
    five_hour = [w for w in statement["windows"] if w["kind"] == "5h"]
    assert five_hour[0]["exhaustions"], "the first 5h window was exhausted"
    debited = sum(r.debit for r in rows if r.window_5h_id == five_hour[0]["window_id"])
    assert five_hour[0]["debited_in_span"] == debited == five_hour[0]["consumed"]


def test_the_hash_ignores_decimal_scale_and_row_order() -> None:
    # ClickHouse gives money back at scale 12 and in its own order
    derivation = derive(log(), ACCOUNT, load_catalog())
    rows = derivation.rows
    rescaled = [
        r._replace(**{name: getattr(r, name).quantize(Decimal("1E-12"))
                      for name in ("list_cost_usd", "charge_usd", "flows", "debit")})
        for r in reversed(rows)
    ]  # fmt: skip
    assert rescaled[0].flows.as_tuple() != rows[-1].flows.as_tuple() or rows[-1].flows == 0
    assert statement_hash(build_statement(ACCOUNT, NOVEMBER, rescaled, derivation.windows)) == (
        statement_hash(build_statement(ACCOUNT, NOVEMBER, rows, derivation.windows))
    )


def test_the_hash_changes_with_any_amount() -> None:
    derivation = derive(log(), ACCOUNT, load_catalog())
    rows = derivation.rows
    altered = list(rows)
    altered[3] = altered[3]._replace(flows=altered[3].flows + Decimal("0.000000000001"))
    original = statement_hash(build_statement(ACCOUNT, NOVEMBER, rows, derivation.windows))
    assert statement_hash(build_statement(ACCOUNT, NOVEMBER, altered, derivation.windows)) != (
        original
    )


def test_canonical_json_is_sorted_compact_and_exact() -> None:
    assert canonical({"b": Decimal("1.500"), "a": [Decimal("0E-12"), Decimal("100")]}) == (
        b'{"a":["0","100"],"b":"1.5"}'
    )
    assert plain(Decimal("-0.000")) == "0"
