#!/usr/bin/env bash
# Plots docs/bench/rss.csv (scripts/rss_over_time.sh, scripts/soak.sh with OUT=) into
# docs/bench/rss.png with scripts/plot_rss.py, in the repository's own .venv-plot (created
# with the pinned matplotlib on first use, see plot_python in scripts/lib.sh).
#
#   scripts/plot_rss.sh [csv] [png]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
python=$(plot_python)
exec "$python" scripts/plot_rss.py "$@"
