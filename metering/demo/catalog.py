"""The demo's catalog: the shipped one with minutes-long windows and caps scaled down, so a
few minutes of simulated traffic exhaust windows and see them reset.

Only durations and caps change; prices, multipliers, Flow coefficients and allow-lists are
the shipped ones, so every charge is still computed by the real rules.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from billing.catalog import default_catalog_path

WINDOW_5H_S = 60
"""The demo's "5-hour" window lasts one minute."""
WINDOW_7D_S = 600
"""The demo's "7-day" window lasts ten minutes."""
CAP_SCALE = Decimal("0.1")
"""Caps (ZenMux Flows, Lilac cap shares) times this: reached at demo traffic rates."""


def _scaled(value: Any) -> Any:
    return None if value is None else format(Decimal(str(value)) * CAP_SCALE, "f")


def demo_catalog(source: Path | None = None) -> dict[str, Any]:
    """The tuned catalog document (every version of the source is tuned alike)."""
    text = (source or default_catalog_path()).read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    for version in document["versions"]:
        version["window_seconds"] = {"5h": WINDOW_5H_S, "7d": WINDOW_7D_S}
        for plan in version["zenmux"]["plans"].values():
            plan["caps"] = {kind: _scaled(cap) for kind, cap in plan["caps"].items()}
        shares = version["lilac"]["cap_shares"]
        version["lilac"]["cap_shares"] = {
            kind: share if kind == "period" else _scaled(share) for kind, share in shares.items()
        }
    return document


def write_demo_catalog(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(demo_catalog(), sort_keys=False), encoding="utf-8")
    return path
