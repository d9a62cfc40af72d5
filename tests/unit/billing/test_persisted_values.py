"""Values the core persists or publishes stay exactly what they were before the speed work.

Fingerprints live in the idempotency table (Faust changelogs): a changed value would turn
every re-delivered request into a conflict. Outputs are consumed by gateways and ClickHouse:
each must still be a valid contract instance, equal to itself read back from its JSON.
"""

from __future__ import annotations

from pathlib import Path

from billing.catalog import Catalog
from billing.dedup import fingerprint
from billing.engine import Engine
from billing.replay import Replay
from metering.replay.logfile import LogRecord, read_log
from schemas.requests import GatewayRequest

WALKTHROUGH = Path(__file__).resolve().parents[3] / "docs/examples/walkthrough.log.jsonl"


def test_a_request_fingerprint_is_the_value_already_stored() -> None:
    # given a request with a non-UTC offset and a microsecond fraction
    request = GatewayRequest.model_validate_json(
        b'{"schema_version": 1, "request_id": "req_01J", "account_id": "acct_42", '
        b'"api_key_id": "key_7", "model": "anthropic/claude-sonnet-4.5", "channel": "api", '
        b'"billing_mode": "subscription", "started_at": "2026-11-23T11:00:00.120+01:00", '
        b'"completed_at": "2026-11-23T10:00:04.900123Z", "status": "ok", "usage": '
        b'{"input_tokens": 5000, "cached_input_tokens": 0, "output_tokens": 1000, "images": 0}}'
    )
    # then its fingerprint is the one computed (and persisted) by the original code
    assert fingerprint(request) == "98da517600bb05099565118ed141ead7"


def test_every_output_of_the_walkthrough_validates_back_from_its_json(catalog: Catalog) -> None:
    # given the walkthrough log folded by the core
    with WALKTHROUGH.open("rb") as stream:
        records = [r for r in read_log(stream) if isinstance(r, LogRecord)]
    engine = Engine(catalog, accounts={}, seen={}, discounts={})
    outputs = list(Replay(engine).run((r.source, r.payload, r.key) for r in records))
    assert {item.topic for item in outputs} >= {"metering.ledger", "metering.quota"}
    # then every output is a valid instance of its contract, equal to its JSON read back,
    # with its fields in the contract's order (the audit reads entries as rows in that order)
    for item in outputs:
        model = type(item.value)
        assert model.model_validate_json(item.value.model_dump_json()) == item.value
        assert list(item.value.__dict__) == list(model.model_fields)
