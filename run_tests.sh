#!/usr/bin/env bash
# Set up .venv when missing, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
source training/bootstrap_venv.sh
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    echo "browser tests: chromium not found, the dashboard's browser test will be skipped (apt-get install -y chromium)"
fi
# One pytest worker per core (pytest-xdist; each test runs torch on one thread). Each test module stays on one
# worker (loadscope), so its module fixtures (training runs, trained tiny models) are built once, not per worker.
# PYTEST_WORKERS=0 runs in this process alone (e.g. to debug with pdb).
exec "$VENV_PY" -m pytest -q -n "${PYTEST_WORKERS:-auto}" --dist loadscope "$@"
