"""The main recipe's supervised warm-start step on its own demonstrations; prints ONE JSON line.

Plays the config's demonstrators (``training/demonstrations.py``: reactive travellers against the rule agent, in
process) on training objectives, then runs ``--steps`` steps of the warm start (TRL's ``SFTTrainer``,
``training/warm_start.py``) on the verified rows, as the main command does, and reports seconds per step, rows and
tokens per step and the share of the computed tokens that were padding. Same rows every run, so two settings can
be compared back to back:

    python benchmarks/bench_warm_start.py --steps 10 --threads 2
    python benchmarks/bench_warm_start.py --steps 10 --threads 2 --set warm_start.group_by_length=true

The default model is the embedded SmolLM2-135M-Instruct (the main command's).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import tempfile
from pathlib import Path

import torch

from agents.auto_user.models import load_tokenizer_checked, resolve_model
from agents.booking import BookingAgentConfig
from training.config import load_config
from training.demonstrations import collect_demonstrations, training_objectives
from training.warm_start import METRICS_FILE, encode_rows, length_grouped_order, resolve_turn_end, warm_start

ROOT = Path(__file__).resolve().parents[1]


def padding_share(lengths: list[int], order: list[int], batch_size: int) -> float:
    """The share of the tokens a right-padded batch computes that are padding, over the batches of ``order``."""
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    computed = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
    return 1 - sum(lengths[i] for i in order) / computed


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "ppo_training_config.yaml"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_config(args.config, args.overrides)
    config.environment.agent = BookingAgentConfig(transport="inprocess", rule=config.environment.agent.rule)
    warm = dataclasses.replace(config.warm_start, max_steps=args.steps, eval_fraction=0.0, seed=config.seed,
                               mixed_precision=config.hardware.mixed_precision, logging_steps=args.steps)
    model_config = dataclasses.replace(config.model, base_model=str(resolve_model(config.model.base_model,
                                                                                  config.model.model_cache_dir)))
    tokenizer = load_tokenizer_checked(model_config.base_model)
    with tempfile.TemporaryDirectory() as tmp:
        config.environment.workdir = str(Path(tmp) / "episodes")
        run = asyncio.run(collect_demonstrations(config, training_objectives(config), warm.demonstration_episodes,
                                                 warm.seed, tokenizer))
        from datasets import Dataset

        dataset = Dataset.from_list(run.rows)
        out = warm_start(model_config, warm, dataset, Path(tmp) / "policy", device="cpu")
        metrics = json.loads((out / METRICS_FILE).read_text())
    examples, _ = encode_rows(tokenizer, dataset, model_config, resolve_turn_end(warm.turn_end, model_config))
    lengths = [len(example["input_ids"]) for example in examples]
    batch, rows = warm.per_device_train_batch_size, args.steps * warm.per_device_train_batch_size
    if warm.group_by_length:
        order = length_grouped_order(lengths, batch, warm.seed)
    else:  # the trainer's random sampler draws its own permutation; padding is the same in expectation
        order = list(range(len(lengths)))
        random.Random(warm.seed).shuffle(order)
    result = {
        "bench": "warm_start",
        "config": Path(args.config).name,
        "overrides": args.overrides,
        "precision": metrics["precision"],
        "torch_threads": torch.get_num_threads(),
        "rows": len(lengths),
        "steps": metrics["steps"],
        "rows_per_step": batch,
        "mean_tokens_per_row": round(sum(lengths) / len(lengths), 1),
        "padding_share": round(padding_share(lengths, order[:rows], batch), 3),
        "seconds_per_step": metrics["seconds_per_step"],
        "loss_last": metrics["train_loss"][-1]["loss"] if metrics["train_loss"] else None,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
