"""The catalog: shipped data is complete and annotated; broken files fail with file, key, reason;
a request is priced by the version in effect at its start."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from billing.catalog import default_catalog_path, load_catalog
from billing.errors import CatalogError
from tests.factories import at, request, started, ts
from tests.unit.billing.conftest import run_scenario

SEED_FREE = {
    "deepseek/deepseek-chat", "deepseek/deepseek-reasoner", "inclusionai/ling-1t",
    "inclusionai/ling-mini-2.0", "inclusionai/ring-1t", "inclusionai/ring-mini-2.0",
    "minimax/minimax-m2.1", "stepfun/step-3", "volcengine/doubao-seed-1.8",
    "xiaomi/mimo-v2-flash", "z-ai/glm-4.6v-flash", "z-ai/glm-4.7",
}  # fmt: skip


def shipped() -> dict[str, Any]:
    loaded = yaml.safe_load(default_catalog_path().read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_shipped_catalog_has_both_families_and_the_seed_allow_lists() -> None:
    version = load_catalog().latest
    assert set(version.zenmux.plans) == {"free", "pro", "max", "ultra"}
    assert set(version.lilac.plans) == {"basic", "pro", "max"}
    assert version.zenmux.plans["free"].models == SEED_FREE
    flagships = {"openai/gpt-5.2-pro", "openai/gpt-5-pro"}
    assert not flagships & version.zenmux.plans["pro"].models
    assert flagships <= version.zenmux.plans["max"].models == version.zenmux.plans["ultra"].models
    lilac = {
        name: (p.price_usd, p.included_multiplier, p.concurrency)
        for name, p in version.lilac.plans.items()
    }
    assert lilac == {
        "basic": (Decimal(10), Decimal(2), 2),
        "pro": (Decimal(30), Decimal("2.5"), 3),
        "max": (Decimal(100), Decimal(3), 4),
    }


def test_every_number_the_seeds_do_not_give_carries_an_assumption() -> None:
    raw = shipped()["versions"][0]
    assert all("assumption" in price for price in raw["models"].values())
    assert "assumption" in raw["zenmux"]["flow"]
    assert all("assumption" in plan for plan in raw["zenmux"]["plans"].values())
    assert "assumption" in raw["lilac"] and raw["default_supply_assumption"]


@pytest.mark.parametrize(
    ("breakage", "key", "reason"),
    [
        (
            lambda v: v["models"]["openai/gpt-5.2"].update(input=1.75),
            "models.openai/gpt-5.2.input",
            "never as floats",
        ),
        (
            lambda v: v["models"]["openai/gpt-5.2"].pop("output"),
            "models.openai/gpt-5.2.output",
            "Field required",
        ),
        (
            lambda v: v["zenmux"]["plans"]["pro"]["models"].append("acme/none"),
            "versions[0]",
            "without a price",
        ),
        (
            lambda v: v["supply_multipliers"].update(surplus="1.5"),
            "supply_multipliers.surplus",
            "less than or equal to 1",
        ),
        (lambda v: v.update(effective_from="2026-01-01T00:00:00"), "effective_from", "timezone"),
    ],
)
def test_broken_catalog_fails_at_load_with_file_key_and_reason(
    tmp_path: Path, breakage, key, reason
) -> None:  # type: ignore[no-untyped-def]
    document = shipped()
    breakage(document["versions"][0])
    path = write(tmp_path, document)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and key in message and reason in message


def test_unreadable_or_invalid_yaml_is_reported_with_its_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"missing\.yaml"):
        load_catalog(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("versions: [\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"bad.yaml: \(syntax\)"):
        load_catalog(bad)


def test_request_is_priced_by_the_version_in_effect_at_its_start(tmp_path: Path) -> None:
    # given a second version from 10:00 that doubles GPT-5.2's prices
    document = shipped()
    second = copy.deepcopy(document["versions"][0])
    second["version"] = "2026.11-price-rise"
    second["effective_from"] = ts(at(60))
    second["models"]["openai/gpt-5.2"].update(input="3.50", output="28")
    document["versions"].append(second)
    catalog = load_catalog(write(tmp_path, document))
    before = request(start=at(59), duration=at(61) - at(59))  # completes under the new version
    after = request(start=at(61))
    # when both are charged
    result = run_scenario([started(), before, after], catalog)
    # then each uses the version in effect when it started
    first, second_entry = result.entry(before["request_id"]), result.entry(after["request_id"])
    assert (first.catalog_version, first.list_cost_usd) == ("2026.01", Decimal("0.02275"))
    assert (second_entry.catalog_version, second_entry.list_cost_usd) == (
        "2026.11-price-rise",
        Decimal("0.0455"),
    )
