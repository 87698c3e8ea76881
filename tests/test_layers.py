"""The apps' dependency order holds (docs/architecture.md).

The contracts are in pyproject.toml under [tool.importlinter]; this runs them
the way a developer would, with `lint-imports`, and fails with its report. It
reads the source, so an import inside a function counts like any other.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_app_imports_a_layer_above_it():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
