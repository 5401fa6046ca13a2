#!/usr/bin/env bash
# Set up .venv when missing, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
source training/bootstrap_venv.sh
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    echo "browser tests: chromium not found, the dashboard's browser test will be skipped (apt-get install -y chromium)"
fi
exec "$VENV_PY" -m pytest -q "$@"
