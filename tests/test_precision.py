"""Which precision the update and the rollouts' sampling run in (agents/auto_user/precision)."""

from __future__ import annotations

import pytest
import torch

from agents.auto_user.precision import resolve_precision, resolve_sampling

CPU = torch.device("cpu")
WITH_BF16 = "processor : 0\nflags : fpu sse2 avx512f avx512_bf16 amx_tile\n"
WITHOUT = "processor : 0\nflags : fpu sse2 avx2\n"


@pytest.mark.parametrize(("setting", "cpuinfo", "expected"), [
    ("auto", WITH_BF16, "bf16"), ("auto", WITHOUT, "no"), ("auto", "", "no"),
    ("bf16", WITHOUT, "bf16"), ("no", WITH_BF16, "no"),
])
def test_mixed_precision_follows_the_cpu_flags_unless_forced(setting: str, cpuinfo: str, expected: str) -> None:
    mode, why = resolve_precision(setting, CPU, cpuinfo)
    assert mode == expected and why


@pytest.mark.parametrize(("setting", "precision", "quantized", "expected"), [
    ("auto", "bf16", False, torch.bfloat16),
    ("auto", "no", False, torch.float32),  # no bf16 units: the merged copy stays float32
    ("auto", "bf16", True, None),  # a 4-bit base cannot be merged: the training model itself
    ("adapter", "bf16", False, None),
    ("merged_bf16", "no", False, torch.bfloat16),
    ("merged_float32", "bf16", False, torch.float32),
])
def test_sampling_source(setting: str, precision: str, quantized: bool, expected: torch.dtype | None) -> None:
    dtype, why = resolve_sampling(setting, precision, quantized)
    assert dtype == expected and why
