"""The rooms import only downwards (DESIGN.md): connector > state > adapters, mappings."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Final

ROOT = Path(__file__).resolve().parents[1]
ROOMS: Final = ("connector", "state", "adapters", "mappings")
LOWER_THAN: Final = {
    "adapters": {"mappings", "state", "connector"},
    "mappings": {"adapters", "state", "connector"},
    "state": {"connector"},
}


def _imports_of(room: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / room).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found.update(name.split(".")[0] for name in names if name.split(".")[0] in ROOMS)
    return found


def project_imports(room: str) -> set[str]:
    """The rooms ``room`` imports, parsed in a fresh interpreter: CPython 3.11's ``ast.parse`` can fail with
    "AST constructor recursion depth mismatch" after deep recursion elsewhere in a long test session."""
    code = f"import json, sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); import test_layering as t; " \
           f"print(json.dumps(sorted(t._imports_of({room!r}))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(json.loads(out.stdout))


def test_each_room_imports_only_downwards() -> None:
    for room, above in LOWER_THAN.items():
        assert not project_imports(room) & above, room


def test_the_rooms_exist_and_import_something() -> None:
    assert project_imports("connector") >= {"state", "adapters", "mappings"}
