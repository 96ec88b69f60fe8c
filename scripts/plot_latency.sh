#!/usr/bin/env bash
# Plots docs/bench/latency.csv (scripts/latency_sweep.sh) into docs/bench/latency.png with
# scripts/plot_latency.py, in a Python environment of the repository's own: .venv-plot,
# created with the pinned matplotlib on first use (needs python3 with venv).
#
#   scripts/plot_latency.sh [csv] [png]
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-plot
MATPLOTLIB=matplotlib==3.10.8
if ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    echo "plot: installing $MATPLOTLIB into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$MATPLOTLIB"
fi
exec "$VENV/bin/python" scripts/plot_latency.py "$@"
