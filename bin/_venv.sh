# Sourced by bin/run and bin/test: make .venv and install the project into it,
# again only when pyproject.toml has changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

find_python() {
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "Tollgate needs Python 3.11 to 3.13 (python3.11 on PATH)." >&2
  return 1
}

say() { echo "tollgate: $*" >&2; }

if [ ! -x .venv/bin/python ]; then
  python="$(find_python)"
  say "first run: creating a Python environment in .venv with $python"
  "$python" -m venv .venv
fi
stamp=".venv/.tollgate-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  if [ -f "$stamp" ]; then
    say "pyproject.toml changed: updating the packages in .venv"
  else
    say "installing Tollgate and its dependencies into .venv (a few minutes, once; later starts skip this)"
  fi
  started=$SECONDS
  # setuptools' notice about editable installs is meant for package authors;
  # nothing in it is for someone starting Tollgate.
  export PYTHONWARNINGS="ignore:Editable installation"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
  unset PYTHONWARNINGS
  echo "$want" > "$stamp"
  say "installed in $((SECONDS - started)) s"
fi
