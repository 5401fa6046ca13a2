"""PPO core for RL fine-tuning of causal LMs: classic `PPOTrainer.step(queries, responses, scores)` contract.

TRL removed its `PPOTrainer`; this package rebuilds it on top of transformers/peft/accelerate with verified updates
(per-epoch KL early stopping and exact rollback of rejected updates).
"""

from training.ppo.config import ModelConfig, PPOConfig, default_lora_targets
from training.ppo.core import (
    AdaptiveKLController,
    FixedKLController,
    clipped_policy_loss,
    clipped_value_loss,
    compute_gae,
    logprobs_from_logits,
    masked_mean,
    masked_var,
    masked_whiten,
    per_token_rewards,
)
from training.ppo.policy import PolicyWithValueHead
from training.ppo.trainer import PPOTrainer

#: Metric names that every `PPOTrainer.step` result contains.
EXPECTED_PPO_METRICS: tuple[str, ...] = (
    "ppo/loss/policy",
    "ppo/loss/value",
    "ppo/loss/total",
    "ppo/policy/entropy",
    "ppo/policy/approxkl",
    "ppo/policy/clipfrac",
    "ppo/val/vpred",
    "ppo/val/clipfrac",
    "ppo/returns/mean",
    "ppo/mean_scores",
    "objective/kl",
    "objective/kl_coef",
    "verification/verified",
    "verification/early_stop_epoch",
    "time/ppo/total",
)

__all__ = [
    "EXPECTED_PPO_METRICS",
    "AdaptiveKLController",
    "FixedKLController",
    "ModelConfig",
    "PPOConfig",
    "PPOTrainer",
    "PolicyWithValueHead",
    "clipped_policy_loss",
    "clipped_value_loss",
    "compute_gae",
    "default_lora_targets",
    "logprobs_from_logits",
    "masked_mean",
    "masked_var",
    "masked_whiten",
    "per_token_rewards",
]
