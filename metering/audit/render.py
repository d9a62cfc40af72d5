"""An audit report as rich tables, JSON or CSV: the same content, three shapes."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from rich.console import Group
from rich.table import Table

from metering.audit.run import AuditReport
from metering.audit.statement import plain

FORMATS = ("table", "json", "csv")
DIFF_ROWS_SHOWN = 50


def as_json(report: AuditReport) -> str:
    document = {
        "account_id": report.account_id,
        "span": plain(report.statement["span"]),
        "clean": report.clean,
        "sha256": report.sha256,
        "derived_sha256": report.derived_sha256,
        "counts": {
            "log_records": report.log_records,
            "stored_entries": report.stored_entries,
            "derived_entries": report.derived_entries,
        },
        "statement": plain(report.statement),
        "diff": [
            {
                "entry_id": d.entry_id,
                "problem": d.problem,
                "why": d.describe(),
                "fields": [
                    {"field": c.field, "stored": plain(c.stored), "derived": plain(c.derived)}
                    for c in d.changes
                ],
            }
            for d in report.diff
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"


def _cells(report: AuditReport) -> Iterator[tuple[str, str, str, Any]]:
    """(section, row, field, value), one per statement cell, then one per diff field."""
    statement = report.statement
    yield "audit", "", "sha256", report.sha256
    yield "audit", "", "derived_sha256", report.derived_sha256
    yield "audit", "", "clean", report.clean
    for name in ("start", "end", "label"):
        yield "span", "", name, statement["span"][name]
    for section, key in (("windows", "window_id"), ("models", "model"), ("funding", "source")):
        for index, row in enumerate(statement[section]):
            label = f"{row[key]}@{row['multiplier']}" if section == "models" else row[key]
            for name, value in row.items():
                if name == "exhaustions":
                    value = ";".join(f"{e['start']}/{e['end'] or ''}" for e in plain(value))
                yield section, label or str(index), name, value
    for row in statement["corrections"]:
        for name, value in row.items():
            yield "corrections", row["entry_id"], name, value
    for name, value in statement["totals"].items():
        yield "totals", "", name, value
    for d in report.diff:
        yield "diff", d.entry_id, "problem", d.problem
        for change in d.changes:
            yield (
                "diff",
                d.entry_id,
                change.field,
                f"stored {change.stored} ≠ derived {change.derived}",
            )


def as_csv(report: AuditReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("section", "row", "field", "value"))
    for section, row, field, value in _cells(report):
        writer.writerow((section, row, field, plain(value)))
    return out.getvalue()


def _money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:,.6f}"


def _when(value: Any) -> str:
    return "" if value is None else plain(value)


def as_tables(report: AuditReport) -> Group:
    statement = report.statement
    verdict = (
        "[green]CLEAN[/green]" if report.clean else f"[red]{len(report.diff)} DIFFERENCES[/red]"
    )
    head = Table(title=f"audit of {report.account_id}, {statement['span']['label']}: {verdict}")
    head.add_column("")
    head.add_column("")
    head.add_row(
        "span (started_at)",
        f"{_when(statement['span']['start'])} → {_when(statement['span']['end'])}",
    )
    head.add_row("raw log records read", f"{report.log_records:,}")
    head.add_row(
        "entries: ClickHouse / raw log", f"{report.stored_entries:,} / {report.derived_entries:,}"
    )
    head.add_row("statement sha256", report.sha256)
    if report.derived_sha256 != report.sha256:
        head.add_row("derived sha256", report.derived_sha256)

    windows = Table(title="windows")
    for column in ("kind", "opened", "resets", "cap", "consumed", "debited in span", "exhausted"):
        windows.add_column(column, justify="left" if column in ("kind", "exhausted") else "right")
    for w in statement["windows"]:
        exhausted = ", ".join(
            f"{_when(e['start'])} → {_when(e['end']) or 'now'}" for e in w["exhaustions"]
        )
        windows.add_row(
            w["kind"], _when(w["opened_at"]), _when(w["resets_at"]), _money(w["cap"]),
            _money(w["consumed"]), _money(w["debited_in_span"]), exhausted or "-",
        )  # fmt: skip

    models = Table(title="charges by model and multiplier")
    for column in ("model", "multiplier", "requests", "input", "cached", "output", "images",
                   "list cost $", "charge $", "flows"):  # fmt: skip
        models.add_column(column, justify="left" if column == "model" else "right")
    for m in statement["models"]:
        models.add_row(
            m["model"], plain(m["multiplier"]), f"{m['requests']:,}", f"{m['input_tokens']:,}",
            f"{m['cached_input_tokens']:,}", f"{m['output_tokens']:,}", f"{m['images']:,}",
            _money(m["list_cost_usd"]), _money(m["charge_usd"]), _money(m["flows"]),
        )  # fmt: skip

    funding = Table(title="funding split (net of corrections)")
    for column in ("source", "entries", "list cost $", "charge $", "flows", "window debit"):
        funding.add_column(column, justify="left" if column == "source" else "right")
    for f in statement["funding"]:
        funding.add_row(
            f["source"], f"{f['entries']:,}", _money(f["list_cost_usd"]),
            _money(f["charge_usd"]), _money(f["flows"]), _money(f["debit"]),
        )  # fmt: skip
    totals = statement["totals"]
    funding.add_row(
        "total", f"{totals['entries']:,}", _money(totals["list_cost_usd"]),
        _money(totals["charge_usd"]), _money(totals["flows"]), _money(totals["debit"]),
        style="bold",
    )  # fmt: skip

    parts: list[Any] = [head, windows, models, funding]
    if statement["corrections"]:
        corrections = Table(title="corrections")
        for column in ("entry", "corrects", "at", "flows", "charge $", "reason"):
            corrections.add_column(column)
        for c in statement["corrections"]:
            corrections.add_row(
                c["entry_id"], c["adjusts_entry_id"] or "", _when(c["at"]),
                _money(c["flows"]), _money(c["charge_usd"]), c["reason"] or "",
            )  # fmt: skip
        parts.append(corrections)
    if report.diff:
        diff = Table(title="differences: ClickHouse against the raw log")
        diff.add_column("entry")
        diff.add_column("problem")
        diff.add_column("why")
        for d in report.diff[:DIFF_ROWS_SHOWN]:
            diff.add_row(d.entry_id, d.problem, d.describe())
        if len(report.diff) > DIFF_ROWS_SHOWN:
            diff.add_row(
                f"… and {len(report.diff) - DIFF_ROWS_SHOWN} more", "", "use --format json"
            )
        parts.append(diff)
    return Group(*parts)
