"""bitsandbytes' CPU-kernel warning, said once, when it matters, in words that say what it means.

On a CPU with AVX512-BF16, importing bitsandbytes (which peft and transformers do on every run) tries to fetch a
fast 4-bit CPU matmul through the optional `kernels` package and, when that fails, logs

    Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'. ...

It reads like an error, and it appears even when nothing is quantized. Importing this module filters that one
record out; `note_cpu_4bit` says what it means when a model is actually loaded in 4-bit on the CPU.
"""

from __future__ import annotations

import importlib.util
import logging

import torch

__all__ = ["note_cpu_4bit"]

logger = logging.getLogger(__name__)

_BITSANDBYTES_CPU_LOGGER = "bitsandbytes.backends.cpu.ops"  # where bitsandbytes logs the message
_KERNEL_MESSAGE = "gemm_4bit_forward from kernels-community"


def _not_the_kernel_message(record: logging.LogRecord) -> bool:
    return _KERNEL_MESSAGE not in record.getMessage()


# Must run before the first `import bitsandbytes`: the message is logged while that module is imported.
logging.getLogger(_BITSANDBYTES_CPU_LOGGER).addFilter(_not_the_kernel_message)

_noted = False


def note_cpu_4bit(device: torch.device | str | None) -> None:
    """Log once per process that 4-bit matmuls on this CPU are slow, when bitsandbytes has no fast kernel for them.

    Args:
        device: Where the 4-bit model is loaded (`None` means the CPU).
    """
    global _noted
    if _noted or (device is not None and torch.device(device).type != "cpu"):
        return
    _noted = True
    try:
        from bitsandbytes.backends.cpu import ops

        fast_kernel = getattr(ops, "gemm_4bit_forward_kernel", None)
    except ImportError:
        fast_kernel = None
    if fast_kernel is not None:
        return
    reason = ("the `kernels` package is not installed" if importlib.util.find_spec("kernels") is None
              else "bitsandbytes found none for this CPU")
    logger.warning("4-bit NF4 on CPU: bitsandbytes has no fast CPU kernel here (%s); expect slow 4-bit matmuls",
                   reason)
