"""A verdict as a terminal table: what was injected, what each invariant found."""

from __future__ import annotations

from rich.table import Table

from reliability.verdict import Verdict


def verdict_table(verdict: Verdict) -> Table:
    ledger, letters = verdict.ledger, verdict.dead_letters
    state = "[green]PASS[/green]" if verdict.ok else "[red]FAIL[/red]"
    table = Table(
        title=f"{verdict.scenario} ({verdict.mode}, seed {verdict.seed}): {state} "
        f"in {verdict.seconds:.0f}s — {verdict.lost} lost, {verdict.double_charged} double-charged"
    )
    table.add_column("section")
    table.add_column("what")
    table.add_column("count", justify="right")
    for event in verdict.faults:
        table.add_row("fault", f"{event.action} {event.detail}".strip(), f"@{event.progress}")
    for kind, count in verdict.load.items():
        if not kind.startswith("bad:"):
            table.add_row("load", kind, str(count))
    for kind, (sent, found) in letters.bad_inputs.items():
        table.add_row("bad input", f"{kind} (in the DLQ)", f"{found}/{sent}")
    rows: list[tuple[str, str, object]] = [
        ("ledger", "entries in the replay", ledger.expected),
        ("ledger", "entries in ClickHouse", ledger.stored),
        ("ledger", "lost", len(ledger.lost)),
        ("ledger", "double-charged", ledger.double_charged),
        ("ledger", "differing", len(ledger.different)),
        ("ledger", "duplicate rows before FINAL", ledger.duplicate_rows),
        ("ledger", "topic records (re-emissions included)", verdict.ledger_records),
        ("windows", "checked", verdict.windows_checked),
        ("windows", "totals disagreeing", len(verdict.window_mismatches)),
        ("dlq", "dead letters (replay / live)", f"{letters.expected} / {letters.found}"),
        ("dlq", "missing / extra / differing",
         f"{len(letters.missing)} / {len(letters.extra)} / {len(letters.different)}"),
        ("routing", "accounts checked", verdict.routes_checked),
        ("routing", "routed unlike their windows", len(verdict.route_mismatches)),
        ("processes", "exits not asked for", len(verdict.unexpected_exits)),
        ("processes", "worker starts that hung (replaced)", len(verdict.worker_start_hangs)),
    ]  # fmt: skip
    for section, what, value in rows:
        table.add_row(section, what, str(value))
    for index, consumer in enumerate(verdict.sink.get("consumers", []), start=1):
        table.add_row(
            "sink",
            f"consumer {index}: inserted / retries / skipped as stored",
            f"{consumer['rows_inserted_total']:.0f} / {consumer['retries_total']:.0f} / "
            f"{consumer['duplicates_skipped_total']:.0f}",
        )
    for name, line in verdict.evidence.items():
        table.add_row("evidence", name, line.split(": ", 1)[0])
    if verdict.problems:
        table.caption = "; ".join(verdict.problems)
    return table
