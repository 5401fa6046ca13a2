"""PPO core for RL fine-tuning of causal LMs: classic `PPOTrainer.step(queries, responses, scores)` contract.

TRL removed its `PPOTrainer`; this package rebuilds it on top of transformers/peft/accelerate with guarded updates
(per-epoch KL early stopping and exact rollback of rejected updates; `training.ppo.update_guard`).
"""

import importlib
from typing import Any

# The names this package exports, by submodule. They load on first use (PEP 562), so that reading a config
# (``training.ppo.config``, plain dataclasses) never imports torch, peft or TRL: a bad config fails in about a
# second, before any model library loads.
_EXPORTS = {
    "config": ("ModelConfig", "PPOConfig", "default_lora_targets"),
    "core": ("AdaptiveKLController", "FixedKLController", "clipped_policy_loss", "clipped_value_loss", "compute_gae",
             "logprobs_from_logits", "masked_mean", "masked_var", "masked_whiten", "per_token_rewards"),
    "policy": ("PolicyWithValueHead",),
    "trainer": ("BATCH_METRICS", "MINIBATCH_METRICS", "PPO_METRICS", "THROUGHPUT_METRICS", "TIMING_METRICS",
                "UPDATE_GUARD_METRICS", "PPOTrainer"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if module != "config":  # first, so that bitsandbytes (imported by peft) is quiet about its optional CPU kernel
        importlib.import_module("agents.auto_user.bitsandbytes_notice")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


__all__ = sorted(_MODULE_OF)
