"""JSON Schema export of every topic's contract, for gateways written in other languages."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.topics import CONTRACTS, INPUT_TOPICS, TICKS

EXPORT_DIR = Path(__file__).resolve().parent / "jsonschema"


def render_schemas() -> dict[str, str]:
    """File name → JSON text, one per topic; inputs in validation mode, outputs as written."""
    files: dict[str, str] = {}
    for topic, adapter in CONTRACTS.items():
        schema = adapter.json_schema(
            mode="validation" if topic in (*INPUT_TOPICS, TICKS) else "serialization"
        )
        schema["$id"] = f"urn:llm-metering:{topic}:v1"
        schema["title"] = topic
        files[f"{topic}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return files


def export_schemas(directory: Path) -> list[Path]:
    """Write every topic's JSON Schema into ``directory``; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
