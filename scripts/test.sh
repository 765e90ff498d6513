#!/usr/bin/env bash
# Installs what the tests need and runs them: gpuplan with its [test] extras, and Debian's chromium for
# the Playwright web-page test (installed only when missing and we are root; no browser download).
# The tests never reach the Hugging Face Hub. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$(command -v python || command -v python3)}"

"$PY" -m pip install -q -e '.[test]'

if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
    echo "warning: could not install chromium; the web-page browser test will be skipped" >&2
  fi
fi

export HF_HUB_OFFLINE=1 GPUPLAN_OFFLINE=1
exec "$PY" -m pytest "$@"
