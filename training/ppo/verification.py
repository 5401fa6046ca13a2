"""Exact snapshot/restore of the trainable state, used to roll back rejected PPO updates."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch

__all__ = ["UpdateSnapshot", "all_finite"]


class UpdateSnapshot:
    """Copies of the trainable parameters and the optimizer state taken before an update.

    Args:
        params: The trainable parameters (LoRA or full weights and the value head).
        optimizer: The optimizer stepping them (plain or accelerate-wrapped).
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], optimizer: torch.optim.Optimizer) -> None:
        self._params = [(p, p.detach().clone()) for p in params]
        # state_dict() returns references to the live moment buffers, so deep-copy them.
        self._optimizer_state = copy.deepcopy(optimizer.state_dict())

    @torch.no_grad()
    def restore(self, optimizer: torch.optim.Optimizer) -> None:
        """Write the saved values back bit-for-bit, reload the optimizer state and clear gradients."""
        for param, saved in self._params:
            param.copy_(saved)
            param.grad = None
        optimizer.load_state_dict(copy.deepcopy(self._optimizer_state))


def all_finite(*tensors: torch.Tensor) -> bool:
    """True if every element of every tensor is finite."""
    return all(bool(torch.isfinite(t).all()) for t in tensors)
