#!/usr/bin/env bash
# Create (or reuse) .venv-bench: a separate virtual environment holding Flower (flwr) and
# numpy, used only by bench/krum.py to time Flower's Krum against our exact Krum.
#
# Why a separate venv: flwr pins fastapi/uvicorn/etc. versions that conflict with the main
# .venv's pins, so it must not be installed there.
#
# Idempotent: if .venv-bench already imports the pinned flwr version, nothing is done.
# Environment overrides:
#   FLWR_VERSION   flwr version to install (default below)
#   BENCH_PYTHON   interpreter used to create the venv (default: the main venv's base
#                  interpreter, else python3.11, else python3)
#   BENCH_VENV     venv path (default: <repo>/.venv-bench)
set -euo pipefail

# 1.42.0 (newest at the time of writing) needs certifi>=2026.10.19, which the package
# mirror here does not have yet; 1.41.0 installs and has both Krum code paths.
FLWR_VERSION="${FLWR_VERSION:-1.41.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BENCH_VENV:-$ROOT/.venv-bench}"

pick_python() {
  if [[ -n "${BENCH_PYTHON:-}" ]]; then
    echo "$BENCH_PYTHON"
    return
  fi
  # The main venv's base interpreter (pyvenv.cfg "executable = ..."), if any.
  local cfg="$ROOT/.venv/pyvenv.cfg"
  if [[ -f "$cfg" ]]; then
    local exe
    exe="$(sed -n 's/^executable *= *//p' "$cfg" | head -n1)"
    if [[ -n "$exe" && -x "$exe" ]]; then
      echo "$exe"
      return
    fi
  fi
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then
      command -v "$cand"
      return
    fi
  done
  echo "bench-venv: no python interpreter found" >&2
  exit 1
}

if [[ -x "$VENV/bin/python" ]] &&
  "$VENV/bin/python" -c "import importlib.metadata as m, sys, numpy, flwr; \
sys.exit(m.version('flwr') != '$FLWR_VERSION')" >/dev/null 2>&1; then
  echo "bench-venv: $VENV already has flwr==$FLWR_VERSION"
  exit 0
fi

PY="$(pick_python)"
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "bench-venv: creating $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "flwr==$FLWR_VERSION" numpy
"$VENV/bin/python" -c "import flwr, numpy; print('bench-venv: flwr', flwr.__version__, \
'numpy', numpy.__version__)"
