"""The apps' dependency order holds (docs/architecture.md).

The contracts are in pyproject.toml under [tool.importlinter]; this runs them
the way a developer would, with `lint-imports`, and fails with its report. It
reads the source, so an import inside a function counts like any other.
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = {"billing_project", "orgs", "accounts", "usage", "billing", "agent_tools", "backoffice"}


def test_no_app_imports_a_layer_above_it():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_private_name_crosses_a_module():
    """`from x import _name` (or a private module) from another module: a private
    name is its module's own (docs/architecture.md)."""
    crossing = []
    for package in sorted(APPS):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in APPS:
                    names = node.module.split(".") + [alias.name for alias in node.names]
                    if any(n.startswith("_") and not n.startswith("__") for n in names):
                        crossing.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import "
                                        + ", ".join(alias.name for alias in node.names))
    assert crossing == []
