"""Every setting read from the environment in config/ is a row of the README's Configuration table.

The reads are found in the source (an AST walk, not a list kept by hand): `os.environ.get`,
`os.environ[...]`, `os.getenv`, `os.environ.setdefault` and the `env_*` helpers of
config/settings/base.py.  A name built with an f-string (`SWITCHBACK_TRANSIENT_DEADLINE_{phase}`)
must be documented as its prefix followed by a placeholder (`SWITCHBACK_TRANSIENT_DEADLINE_<PHASE>`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HELPERS = {"env_bool", "env_list", "env_kube_clusters", "getenv"}
ENV_METHODS = {"get", "setdefault", "pop"}


def _is_os_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _name_of(node: ast.AST) -> str | None:
    """The variable name, or for an f-string its constant prefix plus '<'."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        prefix = ""
        for part in node.values:
            if not (isinstance(part, ast.Constant) and isinstance(part.value, str)):
                return prefix + "<"
            prefix += part.value
        return prefix
    return None


def environment_reads(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        arg = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ENV_METHODS and _is_os_environ(func.value):
                arg = node.args[0]
            elif getattr(func, "attr", getattr(func, "id", "")) in HELPERS:
                arg = node.args[0]
        elif isinstance(node, ast.Subscript) and _is_os_environ(node.value):
            arg = node.slice
        if arg is not None and (name := _name_of(arg)):
            names.add(name)
    return names


def documented_settings(readme: str) -> set[str]:
    """Backticked upper-case names in the first cell of the Configuration table's rows."""
    section = readme.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*(?:<[A-Z]+>[A-Z0-9_]*)?)`", first_cell))
    return names


def undocumented(reads: set[str], documented: set[str]) -> set[str]:
    missing = set()
    for name in reads:
        if name.endswith("<"):
            if not any(doc.startswith(name) for doc in documented):
                missing.add(name + "...>")
        elif name not in documented:
            missing.add(name)
    return missing


def test_every_setting_read_from_the_environment_is_documented():
    reads = set()
    for path in sorted((ROOT / "config").rglob("*.py")):
        reads |= environment_reads(path.read_text())
    assert len(reads) > 40  # the walk finds the reads (a broken walk would pass vacuously)
    assert {"SWITCHBACK_VAR_DIR", "DATABASE_CONN_MAX_AGE", "SWITCHBACK_TRANSIENT_DEADLINE_<"} <= reads
    documented = documented_settings((ROOT / "README.md").read_text())
    assert undocumented(reads, documented) == set()


def test_an_undocumented_read_is_reported():
    source = (
        "import os\n"
        "A = os.environ.get('SB_NEW_ONE', '1')\n"
        "B = os.environ['SB_INDEXED']\n"
        "C = env_bool('SB_FLAG')\n"
        "D = os.environ.get(f'SB_PER_{x}_LIMIT')\n"
        "E = os.getenv('SB_GETENV')\n"
    )
    reads = environment_reads(source)
    assert reads == {"SB_NEW_ONE", "SB_INDEXED", "SB_FLAG", "SB_PER_<", "SB_GETENV"}
    readme = "x\n## Configuration\n\n| variable | meaning |\n|---|---|\n| `SB_NEW_ONE`, `SB_FLAG` | x |\n" \
             "| `SB_PER_<NAME>_LIMIT` | y |\n\n## Next\n| `SB_INDEXED` | elsewhere |\n"
    assert undocumented(reads, documented_settings(readme)) == {"SB_INDEXED", "SB_GETENV"}
