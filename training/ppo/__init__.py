"""PPO core for RL fine-tuning of causal LMs: classic `PPOTrainer.step(queries, responses, scores)` contract.

TRL removed its `PPOTrainer`; this package rebuilds it on top of transformers/peft/accelerate with guarded updates
(per-epoch KL early stopping and exact rollback of rejected updates; `training.ppo.update_guard`).
"""

# First, so that bitsandbytes (imported by peft below) is quiet about its optional CPU kernel.
import agents.auto_user.bitsandbytes_notice  # noqa: F401
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
from training.ppo.trainer import (
    BATCH_METRICS,
    MINIBATCH_METRICS,
    PPO_METRICS,
    THROUGHPUT_METRICS,
    TIMING_METRICS,
    UPDATE_GUARD_METRICS,
    PPOTrainer,
)

__all__ = [
    "BATCH_METRICS",
    "MINIBATCH_METRICS",
    "PPO_METRICS",
    "THROUGHPUT_METRICS",
    "TIMING_METRICS",
    "UPDATE_GUARD_METRICS",
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
