"""Load and validate the catalog YAML; a broken file fails here with file, key and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from billing.catalog.model import Catalog, CatalogVersion
from billing.errors import CatalogError


def default_catalog_path() -> Path:
    """The catalog shipped with the project."""
    return Path(__file__).resolve().parent / "catalog.yaml"


def _expand_includes(version: dict[str, Any], where: str) -> None:
    """A ZenMux plan may ``include`` another plan's models (Max = Pro + flagships)."""
    plans = version.get("zenmux", {}).get("plans", {})
    if not isinstance(plans, dict):
        return
    for name, plan in plans.items():
        if not isinstance(plan, dict):
            continue
        models = list(plan.get("models", []) or [])
        seen = {name}
        parent = plan.pop("includes", None)
        while parent is not None:
            if parent in seen or parent not in plans:
                raise CatalogError(
                    where, f"zenmux.plans.{name}.includes", f"unknown plan {parent!r}"
                )
            seen.add(parent)
            models.extend(plans[parent].get("models", []) or [])
            parent = plans[parent].get("includes")
        plan["models"] = models


def _key(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(root)"


def parse_catalog(document: Any, source: str) -> Catalog:
    """Validate an already-parsed YAML document (``{"versions": [...]}``)."""
    if not isinstance(document, dict) or not isinstance(document.get("versions"), list):
        raise CatalogError(source, "versions", "the file must hold a list under 'versions'")
    versions = []
    names: set[str] = set()
    for index, raw in enumerate(document["versions"]):
        where = f"versions[{index}]"
        if not isinstance(raw, dict):
            raise CatalogError(source, where, "each version must be a mapping")
        raw = dict(raw)
        _expand_includes(raw, source)
        try:
            version = CatalogVersion.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise CatalogError(source, f"{where}.{_key(first['loc'])}", first["msg"]) from None
        if version.version in names:
            raise CatalogError(source, f"{where}.version", f"duplicate version {version.version!r}")
        names.add(version.version)
        versions.append(version)
    if not versions:
        raise CatalogError(source, "versions", "at least one version is required")
    starts = [v.effective_from for v in versions]
    if len(set(starts)) != len(starts):
        raise CatalogError(source, "versions", "two versions share an effective_from")
    return Catalog(versions, source)


def load_catalog(path: Path | None = None) -> Catalog:
    """Read the catalog file (the shipped one by default)."""
    path = path or default_catalog_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(str(path), "(file)", exc.strerror or str(exc)) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(str(path), "(syntax)", str(exc).replace("\n", " ")) from None
    return parse_catalog(document, str(path))
