"""The billing core stays pure: no stream, database or network library, no clock, no env."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = sorted((Path(__file__).resolve().parents[2] / "billing").rglob("*.py"))
FORBIDDEN_MODULES = (
    "faust",
    "aiokafka",
    "clickhouse_connect",
    "chdb",
    "os",
    "time",
    "random",
    "socket",
    "logging",
)
CLOCK_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("date", "today")}


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_module_imports_nothing_impure(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{path.name} imports {name}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name):
                call = (owner.id, node.func.attr)
                assert call not in CLOCK_CALLS, f"{path.name} reads the wall clock ({call})"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "float", f"{path.name} converts to float in the money path"
