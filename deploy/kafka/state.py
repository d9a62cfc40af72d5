"""The state file of a detached broker: what ``metering kafka up`` leaves for ``down``/``status``.

A JSON object written atomically (temp file + rename), so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from metering.errors import ServiceUnavailable


@dataclass(frozen=True)
class BrokerState:
    """One running broker: its process group, ports, address, log and work directory."""

    pid: int
    broker_port: int
    controller_port: int
    bootstrap_servers: str
    version: str
    log_path: str
    work_dir: str
    started_at: str
    security_dir: str | None = None
    """The SASL_SSL material (``deploy/kafka/security.py``); None for a PLAINTEXT broker."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BrokerState:
        raw: Any = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("state file is not a JSON object")
        return cls(
            pid=int(raw["pid"]),
            broker_port=int(raw["broker_port"]),
            controller_port=int(raw["controller_port"]),
            bootstrap_servers=str(raw["bootstrap_servers"]),
            version=str(raw["version"]),
            log_path=str(raw["log_path"]),
            work_dir=str(raw["work_dir"]),
            started_at=str(raw["started_at"]),
            security_dir=None if raw.get("security_dir") is None else str(raw["security_dir"]),
        )


def write_state(path: Path, state: BrokerState) -> None:
    """Replace the state file at ``path`` in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    scratch.write_text(state.to_json())
    scratch.replace(path)


def read_state(path: Path) -> BrokerState | None:
    """The state at ``path``, or None when there is no file. A damaged file is an error."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return BrokerState.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise ServiceUnavailable(f"unreadable broker state file {path} ({exc}): delete it") from exc


def clear_state(path: Path) -> None:
    """Remove the state file; absent is fine."""
    path.unlink(missing_ok=True)
