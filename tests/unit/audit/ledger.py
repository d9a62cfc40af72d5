"""A small ledger from the real core, for the audit's pure tests."""

from __future__ import annotations

import io
from typing import Any

from billing.catalog import load_catalog
from metering.audit.derive import Derivation, derive
from metering.audit.rows import Row
from metering.replay.logfile import LogRecord, read_log
from tests.factories import adjustment, at, lifecycle, log_lines, request, started

ACCOUNT = "acct_audit"


def log() -> list[LogRecord]:
    values = [
        started(ACCOUNT, family="zenmux", plan="pro"),
        lifecycle("fallback_configured", ACCOUNT, when=at(-30), enabled=True,
                  fallback_key_id="key_payg"),
        started("acct_other", family="lilac", plan="basic", paid="10"),
    ]  # fmt: skip
    for n in range(40):
        values.append(
            request(ACCOUNT, start=at(n * 3), model="google/gemini-3-pro-image-preview",
                    images=1, input_tokens=200, output_tokens=0)
        )  # fmt: skip
        values.append(request("acct_other", start=at(n * 3)))
    values.append(request(ACCOUNT, start=at(hours=6), mode="payg"))
    first = derive_values(values).rows[0]
    values.append(adjustment(first.entry_id, "0.5", account=ACCOUNT, when=at(hours=7)))
    return records_of(values)


def records_of(values: list[dict[str, Any]]) -> list[LogRecord]:
    text = log_lines(values).encode()
    return [r for r in read_log(io.BytesIO(text)) if isinstance(r, LogRecord)]


def derive_values(values: list[dict[str, Any]]) -> Derivation:
    return derive(records_of(values), ACCOUNT, load_catalog())


def some_rows() -> list[Row]:
    return derive(log(), ACCOUNT, load_catalog()).rows
