"""The worker's HTTP views (Faust's web server, bound to METERING_WEB_HOST: 127.0.0.1).

GET /status — Lilac's public supply status; GET /accounts/{id}/usage — the account's windows
and route (served by the worker that owns the account's partition); GET /metrics — Prometheus.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from billing.views import account_usage, supply_status
from streams.codecs import decode_timeline
from streams.worker import BillingWorker


def register(worker: BillingWorker) -> None:
    topology = worker.topology
    app = topology.app
    catalog = worker.engine.catalog

    @app.page("/status")
    async def status(web: Any, request: Any) -> Any:
        now = datetime.now(UTC)
        timelines = {model: decode_timeline(raw) for model, raw in topology.discount_table.items()}
        return web.json(supply_status(catalog.at(now) or catalog.latest, timelines, now))

    @app.page("/accounts/{account_id}/usage")
    @app.table_route(table=topology.accounts, match_info="account_id")
    async def usage(web: Any, request: Any, account_id: str) -> Any:
        state = worker.accounts.get(account_id)
        if state is None:
            return web.json({"error": f"unknown account {account_id}"}, status=404)
        return web.json(account_usage(state, datetime.now(UTC)))

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp wants the charset apart from the media type
        media_type = CONTENT_TYPE_LATEST.split(";")[0]
        return web.bytes(generate_latest(worker.metrics.registry), content_type=media_type)
