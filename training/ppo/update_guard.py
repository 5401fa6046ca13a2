"""The PPO update guard: decide after each epoch whether to go on, stop early, or roll the whole update back.

After every PPO epoch the trainer measures the approximate KL between the updated policy and the policy that
sampled the batch (`training.ppo.core.approx_kl`):

    KL <= target_kl            -> run the next epoch
    target_kl < KL <= max_kl   -> stop here and keep the update (early stopping, as in CleanRL's `target_kl`)
    KL > max_kl or KL is NaN   -> reject the update: restore the snapshot taken before the first epoch

A non-finite loss or gradient rejects the update too. Rejection restores the trainable weights and the optimizer
state bit-for-bit, so a rolled-back step leaves the trainer exactly as it found it (apart from the RNGs and the KL
controller, which see every step).
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterable

import torch

__all__ = ["GuardDecision", "UpdateSnapshot", "all_finite", "kl_guard"]


class GuardDecision(enum.Enum):
    """What the update guard says after an epoch."""

    CONTINUE = "continue"
    STOP_EARLY = "stop_early"
    ROLL_BACK = "roll_back"


def kl_guard(approxkl: float, target_kl: float | None, max_kl: float | None) -> GuardDecision:
    """The guard's decision for the KL measured after an epoch (`None` disables that threshold)."""
    if max_kl is not None and not approxkl <= max_kl:  # `not <=` also rejects NaN
        return GuardDecision.ROLL_BACK
    if target_kl is not None and approxkl > target_kl:
        return GuardDecision.STOP_EARLY
    return GuardDecision.CONTINUE


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
