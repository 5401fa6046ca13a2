"""The main recipe's PPO update phase on the states it really sees; prints ONE JSON line.

Builds a batch the way an epoch of the main command does (configs/ppo_training_config.yaml: its environment, its
model and its PPO settings): scripted happy-path travellers talk to the rule agent on generated objectives, every
state string the policy would receive is a query (truncated to `model.max_query_length` tokens as the trainer does),
and the response is what the policy samples there (`PPOTrainer.generate`, as a rollout does, untimed), except for
a `--replayed` share whose response is the traveller's scripted message instead, as the replay buffer mixes in
samples the current weights did not sample; scores are seeded noise. Then one `PPOTrainer.step` on that batch is
timed by phase (`time/update/*`). Same samples every run, so two code versions can be compared back to back:

    python benchmarks/bench_update_phase.py --samples 56 --threads 2      # a later update: 20 % replayed
    python benchmarks/bench_update_phase.py --samples 56 --threads 2 --replayed 0 --updates-before 0  # the first
    python benchmarks/bench_update_phase.py --samples 56 --threads 2 --set ppo.group_by_length=true

The default model is the embedded SmolLM2-135M-Instruct (the main command's).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import tempfile
import time
from pathlib import Path

import torch

from agents.auto_user.models import resolve_model
from agents.auto_user.precision import autocast_dtype, resolve_precision
from agents.booking import BookingAgentConfig
from database.build import build_database
from environment.conversation import BookingConversationEnvironment
from environment.objectives import Objective, generate_objectives
from environment.scripted_users import happy_path
from training.config import load_config
from training.ppo import PPOTrainer

ROOT = Path(__file__).resolve().parents[1]


async def _conversations(config, samples: int, workdir: Path) -> list[tuple[str, str]]:
    """(state, next user message) pairs from scripted happy paths under the config's environment settings."""
    db = build_database(workdir / "flights.db")
    objectives = generate_objectives(db, samples, seed=1)
    env_config = config.environment
    env_config.db_path, env_config.workdir = str(db), str(workdir / "episodes")
    env_config.agent = BookingAgentConfig(transport="inprocess", rule=env_config.agent.rule)
    env = BookingConversationEnvironment(env_config)
    await env.tools.start()
    pairs: list[tuple[str, str]] = []
    for index in range(samples):
        record = objectives[index]
        objective = Objective(**record) if isinstance(record, dict) else record
        env.reset(objective=objective, seed=index)
        for message in happy_path(objective):
            pairs.append((env.format_state(), message))
            step = await env.step(message)
            if step.done or step.truncated or len(pairs) >= samples:
                break
        if len(pairs) >= samples:
            break
    await env.aclose()
    return pairs


def _batch(trainer: PPOTrainer, pairs: list[tuple[str, str]], replayed: float,
           num_envs: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Queries and responses: the policy's samples on the states (batched as rollouts batch them), except for the
    last ``replayed`` share, whose response is the traveller's scripted message."""
    mc, tokenizer = trainer.model_config, trainer.tokenizer
    sampled = len(pairs) - round(replayed * len(pairs))
    queries, responses = [], []
    for start in range(0, sampled, num_envs):
        states = [state for state, _ in pairs[start : min(start + num_envs, sampled)]]
        batch_queries, batch_responses, _ = trainer.generate(states)
        queries, responses = queries + batch_queries, responses + batch_responses
    for state, message in pairs[sampled:]:
        queries.append(torch.tensor(tokenizer(state)["input_ids"][-mc.max_query_length :]))
        responses.append(torch.tensor(tokenizer(" " + message)["input_ids"][: mc.max_response_length]))
    return queries, responses


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "ppo_training_config.yaml"))
    parser.add_argument("--samples", type=int, default=112, help="batch size (the main command's epochs: 95-115)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--replayed", type=float, default=0.2,
                        help="share of samples not sampled by the policy (the main recipe replays 0.25 x fresh = 0.2 "
                             "from its second update on; its first has nothing to replay: --replayed 0)")
    parser.add_argument("--updates-before", type=int, default=1,
                        help="untimed updates first (0: the first update, from a fresh adapter)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_config(args.config, args.overrides)
    with tempfile.TemporaryDirectory() as tmp:
        pairs = asyncio.run(_conversations(config, args.samples, Path(tmp)))
    model_config = dataclasses.replace(config.model, base_model=str(resolve_model(config.model.base_model,
                                                                                  config.model.model_cache_dir)))
    trainer = PPOTrainer(model_config, config.ppo)
    mode, _ = resolve_precision(config.hardware.mixed_precision, trainer.accelerator.device)
    trainer.policy.autocast_dtype = autocast_dtype(mode)
    noise = random.Random(0)
    scores = [noise.uniform(-1, 1) for _ in pairs]
    for _ in range(args.updates_before):  # untimed: the adapter is no longer a no-op after the first
        trainer.step(*_batch(trainer, pairs, args.replayed, config.ppo.num_envs), scores)
    queries, responses = _batch(trainer, pairs, args.replayed, config.ppo.num_envs)
    began = time.perf_counter()
    metrics = trainer.step(queries, responses, scores)
    wall = time.perf_counter() - began
    result = {
        "bench": "update_phase",
        "config": Path(args.config).name,
        "overrides": args.overrides,
        "precision": mode,
        "torch_threads": torch.get_num_threads(),
        "samples": len(pairs),
        "replayed": round(args.replayed * len(pairs)),
        "updates_before": args.updates_before,
        "old_stats_from_sampling": metrics.get("ppo/old_stats_from_sampling"),
        "reference_is_policy": metrics.get("ppo/reference_is_policy"),
        "query_tokens_mean": round(sum(int(q.numel()) for q in queries) / len(queries), 1),
        "response_tokens_mean": round(sum(int(r.numel()) for r in responses) / len(responses), 1),
        "wall_s": round(wall, 2),
        **{name: round(value, 2) for name, value in metrics.items() if name.startswith("time/update/")},
        **{name: round(metrics[name], 4) for name in ("update/accepted", "update/rolled_back_kl",
                                                        "update/rolled_back_nonfinite", "update/approxkl",
                                                        "ppo/policy/approxkl", "objective/kl")},
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
