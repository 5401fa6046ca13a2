"""Benchmark the rollout's sampling: the training model (LoRA adapter layers, float32) vs a merged copy of it
(adapter folded into the weights) in float32 and in bf16; prints ONE JSON line.

Example:
    python benchmarks/bench_sampling.py --model smollm2 --batch 6 --query-len 256 --response-len 24 --threads 2

Each variant samples the same prompts ``--repeats`` times after one warm-up call; the line holds seconds per
batched ``generate`` call, tokens per second, the time to build the merged copy (once per PPO update in training)
and each variant's time relative to the adapter model's (``*_over_adapter``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from agents.auto_user.models import SMOLLM2_ALIAS, resolve_model
from agents.auto_user.tiny_models import TINY_CORPUS, build_tiny_model
from training.ppo import ModelConfig, PPOConfig, PPOTrainer

VARIANTS = {"adapter": None, "merged_float32": torch.float32, "merged_bf16": torch.bfloat16}


def _prompts(batch: int) -> list[str]:
    text = " ".join(TINY_CORPUS * 4)  # long enough to be cut to exactly --query-len tokens
    return [f"{i} {text}" for i in range(batch)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--query-len", type=int, default=256)
    parser.add_argument("--response-len", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3, help="measured generate calls per variant (after a warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = resolve_model(SMOLLM2_ALIAS) if args.model == "smollm2" else build_tiny_model(Path(tmp) / "m", "llama")
        config = ModelConfig(base_model=str(path), use_lora=True, max_query_length=args.query_len,
                             max_response_length=args.response_len, stop_at_newline=False)
        trainer = PPOTrainer(config, PPOConfig())
        with torch.no_grad():  # a trained adapter, not peft's zero-initialised one: merging must change weights
            for name, param in trainer.policy.pretrained_model.named_parameters():
                if "lora_B" in name:
                    param.normal_(std=0.01)
        prompts = _prompts(args.batch)
        runs = {name: _measure(trainer, VARIANTS[name], prompts, args.repeats) for name in args.variants}
    result = {"bench": "sampling", "model": args.model, "batch": args.batch, "query_len": args.query_len,
              "response_len": args.response_len, "torch_threads": torch.get_num_threads(), "runs": runs}
    if "adapter" in runs:
        for name, run in runs.items():
            if name != "adapter":
                result[f"{name}_over_adapter"] = round(run["sec_per_generate"] / runs["adapter"]["sec_per_generate"], 3)
    print(json.dumps(result))
    return result


def _measure(trainer: PPOTrainer, dtype: torch.dtype | None, prompts: list[str], repeats: int) -> dict:
    trainer.sampling_dtype = dtype  # a new dtype makes the next generate build a new merged copy
    t = time.perf_counter()
    trainer.generate(prompts)  # warm-up; builds the merged copy
    first = time.perf_counter() - t
    seconds, tokens = [], 0
    for _ in range(repeats):
        t = time.perf_counter()
        _, responses, _ = trainer.generate(prompts)
        seconds.append(time.perf_counter() - t)
        tokens += sum(int(r.numel()) for r in responses)
    mean = sum(seconds) / len(seconds)
    result = {"sec_per_generate": round(mean, 3), "tokens_per_sec": round(tokens / sum(seconds), 1),
              "first_call_s": round(first, 3)}
    if dtype is not None:  # the first call also made the merged copy
        result["copy_build_s"] = round(max(first - mean, 0.0), 3)
    return result


if __name__ == "__main__":
    main()
