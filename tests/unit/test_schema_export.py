"""The committed JSON Schema files are exactly what the models export (no drift)."""

from __future__ import annotations

from pathlib import Path

from schemas.export import EXPORT_DIR, export_schemas, render_schemas
from schemas.topics import CONTRACTS


def test_committed_json_schemas_match_the_models() -> None:
    rendered = render_schemas()
    committed = {p.name: p.read_text(encoding="utf-8") for p in EXPORT_DIR.glob("*.schema.json")}
    stale = sorted(name for name in rendered if committed.get(name) != rendered[name])
    assert not stale, f"run `metering schema export` and commit: {stale}"
    assert set(committed) == set(rendered)


def test_export_writes_one_file_per_topic(tmp_path: Path) -> None:
    written = export_schemas(tmp_path)
    assert {p.name for p in written} == {f"{topic}.schema.json" for topic in CONTRACTS}
