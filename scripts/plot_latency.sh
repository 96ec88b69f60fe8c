#!/usr/bin/env bash
# Plots docs/bench/latency.csv (scripts/latency_sweep.sh) into docs/bench/latency.png with
# scripts/plot_latency.py, in the repository's own .venv-plot (created with the pinned
# matplotlib on first use, see plot_python in scripts/lib.sh).
#
#   scripts/plot_latency.sh [csv] [png]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
python=$(plot_python)
exec "$python" scripts/plot_latency.py "$@"
