"""The harness's load: deterministic, lifecycle first, every time in the past, faults placed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from billing.catalog import load_catalog
from billing.catalog.model import Catalog
from metering.demo.catalog import write_demo_catalog
from reliability.load import Load, LoadShape, build_load
from schemas import topics
from schemas.requests import GatewayRequest

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return load_catalog(write_demo_catalog(Path(tmp_path_factory.mktemp("catalog")) / "c.yaml"))


@pytest.fixture(scope="module")
def load(catalog: Catalog) -> Load:
    return build_load(LoadShape(), catalog, NOW)


def requests(load: Load, kind: str | None = None) -> list[GatewayRequest]:
    return [
        GatewayRequest.model_validate_json(r.value)
        for r in load.traffic
        if r.kind in ("request", "duplicate", "straggler", "days_late")
        and (kind is None or r.kind == kind)
    ]


def test_the_same_shape_and_instant_give_the_same_records(catalog: Catalog, load: Load) -> None:
    assert build_load(LoadShape(), catalog, NOW) == load
    assert build_load(LoadShape(seed=8), catalog, NOW) != load


def test_lifecycle_and_discounts_come_first_and_traffic_only_after(load: Load) -> None:
    assert load.setup and all(r.kind == "setup" for r in load.setup)
    assert {r.topic for r in load.setup} <= {topics.SUBSCRIPTIONS, topics.DISCOUNTS}
    assert all(r.kind != "setup" for r in load.traffic)


def test_every_request_happened_before_now(load: Load) -> None:
    assert all(r.completed_at <= NOW for r in requests(load))


def test_each_input_fault_is_in_the_load(load: Load) -> None:
    counts = load.counts()
    plain = counts["request"]
    assert 0.05 * plain < counts["duplicate"] < 0.2 * plain  # 10% of requests twice
    assert counts["straggler"] > 0 and counts["malformed"] > 0 and counts["days_late"] > 0
    assert {k for k in counts if k.startswith("bad:")} == {f"bad:{b.kind}" for b in load.bad}


def test_days_late_stragglers_arrive_last_one_to_three_days_back(load: Load) -> None:
    late = requests(load, "days_late")
    assert [r.kind for r in load.traffic[-len(late) :]] == ["days_late"] * len(late)
    others = requests(load, "request")
    newest = max(r.started_at for r in others)
    for request in late:
        assert timedelta(days=1) < newest - request.started_at < timedelta(days=3, minutes=10)
    ids = [r.request_id for r in others + late]
    assert len(ids) == len(set(ids))  # moved, not copied: no conflict with an original


def test_bad_input_follows_the_requests_it_was_built_from(load: Load) -> None:
    position = {r.value: i for i, r in enumerate(load.traffic)}
    first_bad = min(i for i, r in enumerate(load.traffic) if r.kind.startswith("bad:"))
    conflict = next(b for b in load.bad if b.kind == "conflicting_duplicate")
    original = next(
        i
        for i, r in enumerate(load.traffic)
        if r.kind == "request"
        and GatewayRequest.model_validate_json(r.value).request_id
        == GatewayRequest.model_validate_json(conflict.payload).request_id
    )
    assert original < position[conflict.payload]
    assert any(r.kind == "request" for r in load.traffic[first_bad:])  # traffic goes on after
