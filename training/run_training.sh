#!/usr/bin/env bash
# The main job: set up .venv when missing, then train the auto-user with the default config.
#   ./training/run_training.sh [extra train_ppo.py args, e.g. --set ppo.max_epochs=2]
set -euo pipefail
cd "$(dirname "$0")/.."
source training/bootstrap_venv.sh
CONFIG="${CONFIG:-configs/ppo_training_config.yaml}"
exec "$VENV_PY" -m accelerate.commands.launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no training/train_ppo.py --config "$CONFIG" "$@"
