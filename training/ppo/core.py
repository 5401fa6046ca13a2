"""Pure PPO math: log-probabilities, masked statistics, KL-shaped rewards, GAE, clipped losses, KL controllers.

All per-token tensors are response-aligned with shape (B, R): row `i` holds the `R` response positions of sample
`i`, and `mask` (same shape, 1 for real tokens, 0 for padding) marks which are real.
"""

from __future__ import annotations

import torch
from trl.trainer.utils import entropy_from_logits, selective_log_softmax

__all__ = [
    "AdaptiveKLController",
    "FixedKLController",
    "approx_kl",
    "clipped_policy_loss",
    "clipped_value_loss",
    "compute_gae",
    "entropy_from_logits",
    "logprobs_from_logits",
    "masked_mean",
    "masked_var",
    "masked_whiten",
    "per_token_rewards",
]


def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Log-probability of each label under softmax(logits), without materialising the full log-softmax.

    Args:
        logits: (..., V) unnormalised scores.
        labels: (...) token ids.

    Returns:
        (...) log-probabilities in float32 (half-precision logits are upcast for a stable logsumexp).
    """
    return selective_log_softmax(logits.float(), labels)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `values` over positions where `mask` is 1 (all positions pooled when `dim` is None)."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp_min(1.0)
    return (values * mask).sum(dim) / mask.sum(dim).clamp_min(1.0)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of the masked entries (Bessel-corrected when `unbiased` and more than one entry)."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        n = mask.sum()
        if n > 1:
            var = var * n / (n - 1)
    return var


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Normalise masked entries to zero mean (if `shift_mean`) and unit variance; masked-out entries become 0.

    Args:
        values: (B, R) tensor.
        mask: (B, R) 0/1 mask.
        shift_mean: If False, the mean is added back (only the scale is normalised).

    Returns:
        (B, R) whitened tensor.
    """
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(values.dtype)


def per_token_rewards(
    scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """KL-shaped per-token rewards: `-kl_coef * (logp - ref_logp)` at every response token, plus the score on the last.

    Args:
        scores: (B,) one scalar score per sample.
        logprobs: (B, R) log-probabilities of the response tokens under the rollout policy.
        ref_logprobs: (B, R) the same under the reference policy.
        mask: (B, R) response mask; each row must contain at least one 1.
        kl_coef: KL penalty coefficient.

    Returns:
        (B, R) rewards, 0 at padding.
    """
    maskf = mask.to(logprobs.dtype)
    rewards = -kl_coef * (logprobs - ref_logprobs) * maskf
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)  # (B, R)
    last = torch.where(mask.bool(), positions, -1).max(dim=1).values  # (B,) index of the last response token
    rewards[torch.arange(mask.shape[0], device=mask.device), last] += scores.to(rewards.dtype)
    return rewards


def compute_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over response tokens; the episode ends after the last real token.

    Args:
        rewards: (B, R) per-token rewards.
        values: (B, R) value estimates V(s_t) of the state before each response token.
        mask: (B, R) response mask; padding may only follow the real tokens of a row.
        gamma: Discount factor.
        lam: GAE lambda.

    Returns:
        advantages (B, R) and returns = advantages + values (B, R), both 0 at padding.
    """
    maskf = mask.to(values.dtype)
    values = values * maskf
    length = rewards.shape[1]
    last_gae = torch.zeros_like(rewards[:, 0])  # (B,)
    advantages = torch.zeros_like(rewards)
    for t in reversed(range(length)):
        # Padding after the last token has value 0, so the terminal bootstrap is 0.
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(last_gae)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last_gae = (delta + gamma * lam * last_gae) * maskf[:, t]
        advantages[:, t] = last_gae
    returns = (advantages + values) * maskf
    return advantages, returns


def approx_kl(logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(old || new) on samples from the old policy: E[r - 1 - log r], r = p_new/p_old.

    Unbiased and always >= 0, unlike the plain mean of `old - new`.
    """
    log_ratio = (logprobs - old_logprobs).clamp(-20.0, 20.0)
    return masked_mean(torch.expm1(log_ratio) - log_ratio, mask)


def clipped_policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, cliprange: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO clipped surrogate loss.

    Args:
        logprobs: (B, R) log-probabilities under the current policy (requires grad).
        old_logprobs: (B, R) rollout log-probabilities.
        advantages: (B, R) advantages.
        mask: (B, R) response mask.
        cliprange: Ratio clip range epsilon.

    Returns:
        loss (scalar), clip fraction (scalar), approximate KL old->new (scalar, k3).
    """
    ratio = torch.exp(logprobs - old_logprobs)
    loss_unclipped = -advantages * ratio
    loss_clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.max(loss_unclipped, loss_clipped), mask)
    clipfrac = masked_mean((loss_clipped > loss_unclipped).float(), mask)
    return loss, clipfrac.detach(), approx_kl(logprobs.detach(), old_logprobs, mask)


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, cliprange_value: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss `0.5 * max((v - G)^2, (clip(v, v_old +- c) - G)^2)`.

    Args:
        values: (B, R) current value predictions (requires grad).
        old_values: (B, R) rollout value predictions.
        returns: (B, R) GAE returns.
        mask: (B, R) response mask.
        cliprange_value: Clip range around `old_values`.

    Returns:
        loss (scalar) and the fraction of tokens where the clipped term was active (scalar).
    """
    clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    loss_unclipped = (values - returns) ** 2
    loss_clipped = (clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(loss_unclipped, loss_clipped), mask)
    clipfrac = masked_mean((loss_clipped > loss_unclipped).float(), mask)
    return loss, clipfrac.detach()


class AdaptiveKLController:
    """Adaptive KL coefficient of Ziegler et al. (2019), as in classic TRL.

    `value *= 1 + clip(kl / target - 1, -0.2, 0.2) * n_steps / horizon`.

    Args:
        init_kl_coef: Starting coefficient.
        target: Target KL per sequence.
        horizon: Number of samples over which the coefficient may change by ~e^{0.2}.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: int) -> None:
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current: float, n_steps: int) -> None:
        """Move the coefficient towards `target` given the observed KL `current` over `n_steps` samples."""
        proportional_error = min(max(current / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon


class FixedKLController:
    """Constant KL coefficient with the same interface as `AdaptiveKLController`."""

    def __init__(self, kl_coef: float) -> None:
        self.value = float(kl_coef)

    def update(self, current: float, n_steps: int) -> None:
        """No-op: the coefficient stays fixed."""
