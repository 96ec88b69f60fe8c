# shellcheck shell=bash
# Sourced by .ci/run: installs Debian's headless-capable Chromium and its WebDriver
# (chromedriver) if missing, and exports DIFFMILL_TEST_CHROMIUM and
# DIFFMILL_TEST_CHROMEDRIVER for tests/dashboard.rs, which starts chromedriver itself
# (a fresh profile per test) and stops it. Nothing keeps running, so no stop command.
# Test it alone with:
#   STOP_SERVICES=(); source .ci/services/chromium.sh; cargo test --test dashboard

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "chromium: installing chromium and chromium-driver from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
export DIFFMILL_TEST_CHROMIUM="$(command -v chromium)"
export DIFFMILL_TEST_CHROMEDRIVER="$(command -v chromedriver)"
echo "chromium: $("$DIFFMILL_TEST_CHROMEDRIVER" --version | head -n 1), DIFFMILL_TEST_CHROMIUM set"
