"""An evaluation of one model on held-out objectives, as the main command's end-of-run comparison plays it; prints
ONE JSON line.

Plays ``--episodes`` held-out episodes of ``--model`` (default the embedded base model, which plays every turn
of every episode) through the one evaluation path (``training/evaluate.py``'s ``evaluate_model``: the config's
environments, MCP server processes included) and reports the wall time, the user turns sampled and the
seconds per episode. ``evaluation.num_envs`` decides how many conversations share each
batched generation, so two settings compare back to back:

    python benchmarks/bench_evaluation.py --episodes 24 --threads 2
    python benchmarks/bench_evaluation.py --episodes 24 --threads 2 --set evaluation.num_envs=24
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from training.build import evaluation_env_count
from training.config import load_config
from training.evaluate import evaluate_model, evaluation_objectives

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "ppo_training_config.yaml"))
    parser.add_argument("--model", default="base", help="'base' or a policy directory")
    parser.add_argument("--episodes", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_config(args.config, args.overrides)
    objectives = evaluation_objectives(config, args.episodes, 1, None)
    start = time.perf_counter()
    report, records = evaluate_model(args.model, config, args.episodes, 1, objectives)
    seconds = time.perf_counter() - start
    turns = sum(len(record.user_messages) for record in records)
    result = {
        "bench": "evaluation",
        "config": Path(args.config).name,
        "overrides": args.overrides,
        "model": args.model,
        "torch_threads": torch.get_num_threads(),
        "episodes": len(records),
        "evaluation_envs": evaluation_env_count(config),
        "user_turns": turns,
        "seconds": round(seconds, 1),
        "seconds_per_episode": round(seconds / len(records), 2),
        "success_rate": round(report["success_rate"], 3),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
