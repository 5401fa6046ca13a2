"""Mixed precision where the hardware has it: bf16 autocast for the policy's forward/backward, float32 elsewhere.

Measured on a 2-core CPU with AVX512-BF16 (docs/experiments.md, ``bench_ppo_step.py --precision``): the PPO
update's forward and backward passes are much faster in bf16, while sampling under autocast was slower, so only
the policy's training/scoring forward passes run under autocast (``PolicyWithValueHead.autocast_dtype``); the value
head, log-softmax, advantages, KL and losses stay float32. Sampling runs on a merged copy of the policy
(``hardware.sampling``, ``resolve_sampling``): its precision is a separate, measured choice
(``benchmarks/bench_sampling.py``).
"""

from __future__ import annotations

from pathlib import Path

import torch

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
#: ``hardware.sampling`` / ``AutoUserConfig.sampling``: what rollouts and evaluations sample from.
SAMPLING_CHOICES = ("auto", "merged_bf16", "merged_float32", "adapter")


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """The CPU's bf16 matrix/vector flags (from ``/proc/cpuinfo``; empty where it cannot be read)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
            break
    return [flag for flag in BF16_CPU_FLAGS if flag in flags]


def resolve_precision(setting: str, device: torch.device, cpuinfo: str | None = None) -> tuple[str, str]:
    """("bf16" or "no", why) for ``hardware.mixed_precision`` = "auto", "bf16" or "no" on ``device``."""
    if setting == "no":
        return "no", "hardware.mixed_precision is 'no'"
    if setting == "bf16":
        return "bf16", "hardware.mixed_precision is 'bf16'"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", f"the GPU ({torch.cuda.get_device_name(device)}) supports bf16"
        return "no", "the GPU has no bf16 support"
    flags = cpu_bf16_flags(cpuinfo)
    if flags:
        return "bf16", f"the CPU has {' and '.join(flags)}"
    return "no", "the CPU has no bf16 matrix units (amx_bf16 / avx512_bf16): float32"


def autocast_dtype(mode: str) -> torch.dtype | None:
    return torch.bfloat16 if mode == "bf16" else None


def resolve_sampling(setting: str, precision: str, quantized: bool) -> tuple[torch.dtype | None, str]:
    """(dtype of the merged copy the rollouts sample from, or None for the training model itself; why) for
    ``hardware.sampling`` given the resolved ``precision`` ("bf16" or "no")."""
    if setting == "adapter":
        return None, "hardware.sampling is 'adapter': the training model (adapter layers, float32)"
    if quantized:  # config validation rejects merged_* with a 4-bit base
        return None, "the base is 4-bit and cannot be merged exactly: the training model"
    if setting == "merged_bf16":
        return torch.bfloat16, "hardware.sampling is 'merged_bf16'"
    if setting == "merged_float32":
        return torch.float32, "hardware.sampling is 'merged_float32'"
    # bf16 where the update is bf16: a merged bf16 copy measured 0.64x the adapter model's time, a merged float32
    # copy 0.98x (benchmarks/bench_sampling.py, docs/experiments.md)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return dtype, f"a merged copy of the policy in {str(dtype).removeprefix('torch.')} (mixed precision: {precision})"

