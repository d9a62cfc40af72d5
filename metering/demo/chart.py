"""A PNG of the busiest accounts' 5-hour-window consumption against their caps over time,
with each exhaustion and restore marked: the picture of "ran out, fell back, came back".

Consumption is plotted at each request's ``started_at`` (where a charge is attributed); a
request in flight when the window ran out still counts in it, hence overshoots above the cap.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from schemas.ledger import LedgerEntry
from schemas.quota import QuotaEvent


def busiest(entries: Sequence[LedgerEntry], quota: Sequence[QuotaEvent], count: int) -> list[str]:
    """Accounts with the most 5h exhaustions, then the most window debit."""
    exhausted: dict[str, int] = defaultdict(int)
    for event in quota:
        if event.type == "exhausted" and event.window_kind == "5h":
            exhausted[event.account_id] += 1
    debit: dict[str, Decimal] = defaultdict(Decimal)
    for entry in entries:
        if entry.window_5h_id is not None:
            debit[entry.account_id] += entry.debit
    return sorted(debit, key=lambda a: (-exhausted[a], -debit[a], a))[:count]


def window_chart(
    entries: Sequence[LedgerEntry], quota: Sequence[QuotaEvent], path: Path, accounts: int = 3
) -> Path:
    import matplotlib  # here, not at import time: the CLI starts without it

    matplotlib.use("Agg")  # files only: no display on servers and in CI
    import matplotlib.pyplot as plt

    chosen = busiest(entries, quota, accounts)
    fig, axes = plt.subplots(max(len(chosen), 1), 1, figsize=(11, 3.2 * max(len(chosen), 1)))
    axes_list = list(axes) if len(chosen) > 1 else [axes]
    for ax, account in zip(axes_list, chosen, strict=False):
        mine = sorted(  # debits of the windows, where the SPEC attributes them: at admission
            (
                e
                for e in entries
                if e.account_id == account and e.window_5h_id is not None
                and e.funding == "subscription"
            ),
            key=lambda e: (e.started_at, e.entry_id),
        )  # fmt: skip
        by_window: dict[str, list[LedgerEntry]] = defaultdict(list)
        for entry in mine:
            by_window[entry.window_5h_id or ""].append(entry)
        unit = mine[0].unit if mine else ""
        for n, window in enumerate(by_window.values()):
            consumed = Decimal(0)
            xs, ys = [], []
            for entry in window:
                consumed += entry.debit
                xs.append(entry.started_at)
                ys.append(float(consumed))  # plotting only: the ledger stays Decimal
            ax.step(xs, ys, where="post", color="tab:blue", label="consumed" if n == 0 else None)
        events = [q for q in quota if q.account_id == account and q.window_kind == "5h"]
        for n, event in enumerate(e for e in events if e.type == "exhausted"):
            ax.hlines(float(event.cap), event.opened_at, event.resets_at, colors="grey",
                      linestyles="dashed", label="cap" if n == 0 else None)  # fmt: skip
            ax.plot([event.at], [float(event.cap)], "rx", markersize=10,
                    label="exhausted" if n == 0 else None)  # fmt: skip
        for n, event in enumerate(e for e in events if e.type == "restored"):
            ax.plot([event.at], [0], "go", markersize=8, label="restored" if n == 0 else None)
        ax.set_title(f"{account}: 5-hour window ({unit})")
        ax.set_ylabel(unit)
        ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=90)
    plt.close(fig)
    return path
