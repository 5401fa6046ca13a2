#!/usr/bin/env bash
# The main job: set up .venv when missing, then train the auto-user with the default config.
#   ./training/run_training.sh [extra train_ppo.py args, e.g. --set ppo.iterations=2, --resume latest, --overwrite]
# One process, started directly (what `accelerate launch` runs for one process), so a SIGTERM from a scheduler or
# `docker stop` reaches the run, which saves a checkpoint and exits 143; `accelerate launch` does not pass it on.
# For several processes: accelerate launch --num_processes N training/train_ppo.py --config ...
set -euo pipefail
cd "$(dirname "$0")/.."
source training/bootstrap_venv.sh
CONFIG="${CONFIG:-configs/ppo_training_config.yaml}"
exec "$VENV_PY" training/train_ppo.py --config "$CONFIG" "$@"
