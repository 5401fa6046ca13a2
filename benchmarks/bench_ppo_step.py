"""Benchmark one PPO iteration (generate + step) on an offline random model; prints ONE JSON line.

Example:
    python benchmarks/bench_ppo_step.py --model dialogpt-small-shape --lora --batch 8 --query-len 128 \
        --response-len 32 --steps 2
    python benchmarks/bench_ppo_step.py --model smollm2 --lora --batch 8 --query-len 256 --response-len 24 \
        --ppo-epochs 1 --steps 2 --threads 2 --precision no bf16     # both in one run, with the ratio

``--precision`` takes one or more of no|bf16|auto (``hardware.mixed_precision``); with several, each is measured on
the same model and the line also holds ``bf16_over_no`` (update time ratio).

Each run also reports the step's model FLOPs counted from the shapes (``step_tflops``: the passes `PPOTrainer.step`
makes, see ``step_flops``), the rate they were done at, this machine's measured matmul peak in the run's precision
(``matmul_peak_gflops``: a 2048 x 2048 product with the same threads) and ``fraction_of_peak``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import torch
import yaml

from agents.auto_user.models import SMOLLM2_ALIAS, resolve_model
from agents.auto_user.precision import autocast_dtype, resolve_precision
from agents.auto_user.tiny_models import TINY_CORPUS, build_gpt2_small_shape, build_tiny_model
from training.ppo import ModelConfig, PPOConfig, PPOTrainer


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def matmul_peak_gflops(dtype: torch.dtype, size: int = 2048, seconds: float = 1.0) -> float:
    """This CPU's (or GPU's) dense matmul rate in `dtype` with the current torch threads: a size x size product,
    repeated for about `seconds` after one warm-up."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)
    runs, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        torch.mm(a, b)
        runs += 1
    return 2 * size**3 * runs / (time.perf_counter() - began) / 1e9


def forward_flops(policy: torch.nn.Module, batch: int, seq_len: int, logits_to_keep: int) -> float:
    """Model FLOPs of one forward over (batch, seq_len) tokens, counted from the shapes: 2 x every matmul weight
    of the transformer blocks (LoRA's included) per token, the attention scores and their weighted sum
    (4 x seq_len x width per token and layer, as SDPA computes them under a padding mask), and the LM head over the
    last `logits_to_keep` columns."""
    config = policy.pretrained_model.config.get_text_config()
    head = policy.pretrained_model.get_output_embeddings().weight
    block_weights = sum(  # each matmul once: peft's LoRA wrappers (with a base_layer) are counted by their parts
        m.weight.numel() for name, m in policy.pretrained_model.named_modules()
        if type(m).__name__ in ("Linear", "Conv1D") and not hasattr(m, "base_layer")
        and m.weight is not head and "lm_head" not in name
    )
    tokens = batch * seq_len
    attention = 4 * seq_len * config.hidden_size * config.num_hidden_layers * tokens
    return 2 * block_weights * tokens + attention + 2 * head.numel() * batch * logits_to_keep


def step_flops(policy: torch.nn.Module, args: argparse.Namespace, metrics: dict, pc: PPOConfig) -> float:
    """Model FLOPs of the passes one `PPOTrainer.step` makes on fixed-length samples: the old log-prob pass over the
    samples sampling did not give (`ppo/old_stats_from_sampling`), the reference pass, each epoch run (forward,
    plus a backward of about one forward for LoRA, whose frozen weights get no gradient, two for full
    fine-tuning), and, with `kl_guard_measure: batch`, the update guard's no-grad pass over the batch after each
    epoch (after the last one only, when one optimizer step holds the whole batch: the next epoch's forward
    measures)."""
    seq, keep = args.query_len + args.response_len, args.response_len + 1
    batch_pass = forward_flops(policy, args.batch, seq, keep)
    epochs = metrics["update/epochs_completed"] or metrics["update/early_stop_epoch"] + 1
    backward = 1.0 if args.lora else 2.0
    old_pass = 1.0 - metrics.get("ppo/old_stats_from_sampling", 0.0)
    guard_passes = 0 if pc.kl_guard_measure == "minibatches" else 1 if pc.mini_batch_size >= args.batch else epochs
    return (old_pass + 1) * batch_pass + epochs * (1 + backward) * batch_pass + guard_passes * batch_pass


def _ppo_overrides(overrides: list[str]) -> dict:
    """``--set KEY=VALUE`` pairs as PPOConfig keyword arguments (values parsed as YAML scalars)."""
    pairs = [item.split("=", 1) for item in overrides]
    return {key: yaml.safe_load(value) for key, value in pairs}


def _prompts(batch: int) -> list[str]:
    # Long enough that every prompt is truncated from the left to exactly --query-len tokens.
    text = " ".join(TINY_CORPUS * 4)
    return [f"{i} {text}" for i in range(batch)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "tiny-llama", "dialogpt-small-shape", "smollm2"], default="tiny")
    parser.add_argument("--lora", action="store_true", help="train LoRA adapters (default: full fine-tuning)")
    parser.add_argument("--4bit", dest="four_bit", action="store_true", help="4-bit NF4 base weights (needs --lora)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--mini-batch", type=int, default=4)
    parser.add_argument("--query-len", type=int, default=128)
    parser.add_argument("--response-len", type=int, default=32)
    parser.add_argument("--ppo-epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="measured iterations (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a PPOConfig field, e.g. --set kl_guard_measure=batch --set reuse_sampling_pass=false")
    parser.add_argument("--precision", nargs="+", choices=["no", "bf16", "auto"], default=["no"],
                        help="hardware.mixed_precision setting(s) to measure")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if args.model == "dialogpt-small-shape":
            path = build_gpt2_small_shape(Path(tmp) / "model")
        elif args.model == "smollm2":
            path = resolve_model(SMOLLM2_ALIAS)
        else:
            path = build_tiny_model(Path(tmp) / "model", "llama" if args.model == "tiny-llama" else "gpt2")
        build_s = time.perf_counter() - t0
        runs = {setting: _measure(args, path, setting) for setting in args.precision}
    result = {"bench": "ppo_step", "model": args.model, "lora": args.lora, "4bit": args.four_bit,
              "build_s": round(build_s, 2), "torch_threads": torch.get_num_threads(), "runs": runs}
    if "no" in runs and len(runs) > 1:
        for setting, run in runs.items():
            if setting != "no":
                result[f"{setting}_over_no"] = round(run["sec_per_ppo_step"] / runs["no"]["sec_per_ppo_step"], 3)
    print(json.dumps(result))
    return result


def _measure(args: argparse.Namespace, path: str | Path, precision: str = "no") -> dict:
    """Generate + step ``args.steps`` times (after one warm-up) with ``hardware.mixed_precision = precision``."""
    mc = ModelConfig(
        base_model=str(path),
        use_lora=args.lora,
        use_quantization=args.four_bit,
        max_query_length=args.query_len,
        max_response_length=args.response_len,
        stop_at_newline=False,
    )
    pc = PPOConfig(mini_batch_size=min(args.mini_batch, args.batch), ppo_epochs=args.ppo_epochs,
                   **_ppo_overrides(args.overrides))
    trainer = PPOTrainer(mc, pc)
    mode, why = resolve_precision(precision, trainer.accelerator.device)
    trainer.policy.autocast_dtype = autocast_dtype(mode)
    torch.manual_seed(0)
    prompts = _prompts(args.batch)
    gen_s, step_s, gen_tokens, early, flops = [], [], [], [], []
    for i in range(args.steps + 1):  # iteration 0 is warm-up
        t = time.perf_counter()
        queries, responses, _ = trainer.generate(prompts)
        t_gen = time.perf_counter() - t
        scores = [float(r.float().mean() % 2) for r in responses]
        t = time.perf_counter()
        metrics = trainer.step(queries, responses, scores)
        t_step = time.perf_counter() - t
        if i > 0:
            gen_s.append(t_gen)
            step_s.append(t_step)
            gen_tokens.append(sum(int(r.numel()) for r in responses))
            early.append(metrics["update/early_stop_epoch"])
            flops.append(step_flops(trainer.policy, args, metrics, pc))
    n_trainable = sum(p.numel() for _, p in trainer.policy.trainable_named_parameters())
    n_total = sum(p.numel() for p in trainer.policy.parameters())

    mean_gen, mean_step = sum(gen_s) / len(gen_s), sum(step_s) / len(step_s)
    peak = matmul_peak_gflops(torch.bfloat16 if mode == "bf16" else torch.float32)
    achieved = sum(flops) / sum(step_s) / 1e9
    return {
        "precision": mode,
        "why": why,
        "batch": args.batch,
        "mini_batch": pc.mini_batch_size,
        "query_len": int(queries[0].numel()),
        "response_len": args.response_len,
        "mean_response_tokens": sum(gen_tokens) / len(gen_tokens) / args.batch,
        "ppo_epochs": args.ppo_epochs,
        "overrides": args.overrides,
        "old_stats_from_sampling": metrics.get("ppo/old_stats_from_sampling"),
        "steps": args.steps,
        "sec_per_ppo_step": round(mean_step, 4),
        "sec_per_generate": round(mean_gen, 4),
        "step_tflops": round(sum(flops) / len(flops) / 1e12, 3),
        "step_achieved_gflops": round(achieved, 1),
        "matmul_peak_gflops": round(peak, 1),
        "fraction_of_peak": round(achieved / peak, 3),
        "samples_per_sec": round(args.batch / (mean_gen + mean_step), 3),
        "step_samples_per_sec": round(args.batch / mean_step, 3),
        "gen_tokens_per_sec": round(sum(gen_tokens) / sum(gen_s), 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "trainable_params": n_trainable,
        "total_params": n_total,
        "early_stop_epochs": early,
        "device": str(trainer.accelerator.device),
    }


if __name__ == "__main__":
    main()
