#!/usr/bin/env bash
# The README's dashboard screenshot (docs/dashboard.png): runs graphs/ad_funnel.toml with
# 4 M bids and the metrics server on, and photographs the page in headless Chromium over
# WebDriver (chromedriver's HTTP API) during the run, after WAIT seconds.
#
#   source .ci/services/chromium.sh; scripts/dashboard_screenshot.sh [WAIT]
set -euo pipefail
cd "$(dirname "$0")/.."
wait=${1:-15}
chromium=${DIFFMILL_TEST_CHROMIUM:-$(command -v chromium)}
chromedriver=${DIFFMILL_TEST_CHROMEDRIVER:-$(command -v chromedriver)}
cargo build --release --quiet
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metrics=$(free_port)
driver=$(free_port)
target/release/diffmill run graphs/ad_funnel.toml --bids 4000000 --output "$work/out" \
    --metrics-addr "127.0.0.1:$metrics" --linger 0s --status-every 0 >/dev/null 2>"$work/run.err" &
run=$!
"$chromedriver" --port="$driver" >/dev/null 2>&1 &
chromedriver_pid=$!
trap 'kill $run $chromedriver_pid 2>/dev/null; rm -rf "$work"' EXIT
sleep 2
session=$(curl -s -X POST "http://127.0.0.1:$driver/session" -H 'Content-Type: application/json' -d "{
  \"capabilities\": {\"alwaysMatch\": {\"goog:chromeOptions\": {\"binary\": \"$chromium\", \"args\": [
    \"--headless\", \"--no-sandbox\", \"--disable-gpu\", \"--disable-background-networking\",
    \"--disable-component-update\", \"--disable-sync\", \"--no-first-run\", \"--hide-scrollbars\",
    \"--window-size=1400,1500\", \"--user-data-dir=$work/profile\"]}}}}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["value"]["sessionId"])')
curl -s -X POST "http://127.0.0.1:$driver/session/$session/url" -H 'Content-Type: application/json' \
    -d "{\"url\": \"http://127.0.0.1:$metrics/\"}" >/dev/null
sleep "$wait"
curl -s "http://127.0.0.1:$driver/session/$session/screenshot" |
    python3 -c 'import base64,json,sys; sys.stdout.buffer.write(base64.b64decode(json.load(sys.stdin)["value"]))' \
    >docs/dashboard.png
curl -s -X DELETE "http://127.0.0.1:$driver/session/$session" >/dev/null
echo "docs/dashboard.png written"
