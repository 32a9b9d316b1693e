"""Nothing but deployments/transitions.py writes a deployment's state (issue 10): no
`.update(state=...)`, no `deployment.state = ...`, no SQL naming the column elsewhere."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {ROOT / "deployments" / "transitions.py"}


def _writes_state(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "update", "bulk_update", "create", "update_or_create", "get_or_create"):
            if node.func.attr == "update" and any(k.arg == "state" for k in node.keywords):
                lines.append(node.lineno)
        if isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Attribute) and sub.attr == "state" and isinstance(sub.value, ast.Name) \
                            and sub.value.id in ("deployment", "d", "other", "locked", "stale", "rollback"):
                        lines.append(node.lineno)
    return sorted(lines)


def test_only_the_transition_path_writes_state():
    offenders = []
    for path in sorted((ROOT / "deployments").rglob("*.py")):
        if path in ALLOWED or "migrations" in path.parts:
            continue
        text = path.read_text()
        offenders += [f"{path.relative_to(ROOT)}:{line}" for line in _writes_state(ast.parse(text))]
        if re.search(r"UPDATE[^;\n]*\bstate\b\}?\s*=", text, re.IGNORECASE):
            offenders.append(f"{path.relative_to(ROOT)}: raw SQL writes state")
    assert offenders == []


def test_the_check_would_catch_a_direct_write():
    tree = ast.parse("Deployment.objects.filter(pk=1).update(state='failed')\ndeployment.state = 'x'\n")
    assert _writes_state(tree) == [1, 2]
