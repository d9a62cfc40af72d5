"""What a request costs: list cost in dollars, Lilac's discounted charge, ZenMux Flows.

Non-ok requests (``error``, ``canceled``) pay only for the tokens they report: no images,
no per-request component (neither the dollar one nor the per-request Flows).
"""

from __future__ import annotations

from decimal import Decimal

from billing.catalog.model import FlowFormula, ModelPrice
from billing.money import ZERO, rounded
from schemas.requests import RequestStatus, Usage

PER_MILLION = Decimal(1_000_000)


def list_cost_usd(price: ModelPrice, usage: Usage, status: RequestStatus) -> Decimal:
    """Tokens × per-token list prices (+ images × image price + per-request price if ok)."""
    token_cost = (
        usage.input_tokens * price.input
        + usage.cached_input_tokens * price.cached_input
        + usage.output_tokens * price.output
    ) / PER_MILLION
    if status == "ok":
        token_cost += usage.images * price.image + price.request
    return rounded(token_cost)


def discounted_usd(list_cost: Decimal, multiplier: Decimal) -> Decimal:
    """Lilac: the share of list cost a request consumes from included usage."""
    return rounded(list_cost * multiplier)


def flows(list_cost: Decimal, formula: FlowFormula, status: RequestStatus) -> Decimal:
    """ZenMux: ``list_cost_usd / usd_per_flow + flows_per_request`` (the latter only if ok)."""
    per_request = formula.flows_per_request if status == "ok" else ZERO
    return rounded(list_cost / formula.usd_per_flow) + per_request
