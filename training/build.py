"""How a training run is put together from its config: the policy, the trainer and the environments.

``TrainingRun`` (``training.loop``) calls these in order; each is usable on its own (a notebook that wants the
run's policy or its environments without a run calls the same function).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from accelerate import Accelerator

from agents.auto_user.model_files import ModelFileError
from agents.auto_user.precision import autocast_dtype, resolve_precision, resolve_sampling
from environment.config import EnvironmentConfig
from environment.conversation import BookingConversationEnvironment
from training.config import TrainingConfig
from training.ppo import PolicyWithValueHead, PPOTrainer
from training.ppo.config import ModelConfig

logger = logging.getLogger(__name__)

__all__ = ["build_environments", "build_policy", "build_trainer"]


def build_policy(config: TrainingConfig, model_config: ModelConfig, device: torch.device,
                 start_from: str | Path | None = None) -> PolicyWithValueHead:
    """The policy: a fresh LoRA (or full) policy on ``model_config.base_model`` (a resolved local path), or the
    trained one in ``start_from`` (``model.init_from`` or a checkpoint), which must share that base model. Its
    update runs in the precision ``hardware.mixed_precision`` resolves to."""
    policy = (PolicyWithValueHead.from_pretrained(start_from, device=device) if start_from
              else PolicyWithValueHead.from_config(model_config, device=device))
    if start_from and Path(policy.model_config.base_model).resolve() != Path(model_config.base_model).resolve():
        raise ModelFileError(f"model.init_from: {start_from} was trained on {policy.model_config.base_model}, "
                             f"not on the config's base model {config.model.base_model} ({model_config.base_model})")
    precision, why = resolve_precision(config.hardware.mixed_precision, device)
    policy.autocast_dtype = autocast_dtype(precision)
    logger.info("mixed precision: %s (%s)", precision, why)
    return policy


def build_trainer(config: TrainingConfig, model_config: ModelConfig, policy: PolicyWithValueHead,
                  accelerator: Accelerator) -> PPOTrainer:
    """The PPO trainer over ``policy``, sampling from what ``hardware.sampling`` resolves to."""
    trainer = PPOTrainer(model_config, config.ppo, policy=policy, accelerator=accelerator)
    precision = "bf16" if policy.autocast_dtype == torch.bfloat16 else "no"
    trainer.sampling_dtype, why = resolve_sampling(config.hardware.sampling, precision,
                                                   policy.model_config.use_quantization)
    logger.info("sampling: %s", why)
    return trainer


def build_environments(config: TrainingConfig, tokenizer, first_worker: int,
                       environment: EnvironmentConfig | None = None,
                       count: int | None = None) -> list[BookingConversationEnvironment]:
    """``count`` (default ``ppo.num_envs``) conversation environments (worker ids from ``first_worker``), their
    states fitted to the policy's query budget; ``environment`` replaces ``config.environment`` (e.g. with a
    run-owned workdir)."""
    environment = environment or config.environment
    return [BookingConversationEnvironment(environment, worker_id=first_worker + i, tokenizer=tokenizer,
                                           max_state_tokens=config.model.max_query_length)
            for i in range(config.ppo.num_envs if count is None else count)]


def evaluation_env_count(config: TrainingConfig) -> int:
    """How many environments an evaluation steps concurrently: ``evaluation.num_envs``, or ``ppo.num_envs``."""
    return config.evaluation.num_envs or config.ppo.num_envs
