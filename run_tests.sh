#!/usr/bin/env bash
# Set up .venv when missing, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
source training/bootstrap_venv.sh
exec "$VENV_PY" -m pytest -q "$@"
