"""PPO trainer with the classic `step(queries, responses, scores)` contract and verified (rollback-able) updates."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from agents.auto_user.generation import sample_responses, stop_token_ids
from training.ppo.batching import gather_response, pack, pad_response_aligned
from training.ppo.config import ModelConfig, PPOConfig
from training.ppo.core import (
    AdaptiveKLController,
    FixedKLController,
    approx_kl,
    clipped_policy_loss,
    clipped_value_loss,
    compute_gae,
    entropy_from_logits,
    logprobs_from_logits,
    masked_mean,
    masked_whiten,
    per_token_rewards,
)
from training.ppo.policy import PolicyWithValueHead, load_tokenizer
from training.ppo.verification import UpdateSnapshot, all_finite

__all__ = ["PPOTrainer"]


class PPOTrainer:
    """Proximal Policy Optimization for a causal LM policy with a value head.

    Each `step` computes rollout log-probabilities, values and reference log-probabilities, shapes per-token rewards
    with a KL penalty, estimates advantages with GAE, then runs `ppo_epochs` of clipped-PPO updates over shuffled
    mini-batches. After every epoch the approximate KL to the pre-update policy is measured on the whole batch: above
    `target_kl` the remaining epochs are skipped, above `max_kl` (or on any non-finite loss/gradient) the update is
    rejected and the trainable weights and optimizer state are restored exactly.

    Args:
        model_config: Policy model configuration (used to build the policy when `policy` is None, and for sampling).
        ppo_config: Optimisation configuration.
        policy: An existing policy; built with `PolicyWithValueHead.from_config` when None.
        tokenizer: Tokenizer; defaults to the policy's (or the base model's).
        accelerator: An `accelerate.Accelerator`; one is created (CPU when CUDA is unavailable) when None.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        ppo_config: PPOConfig,
        policy: PolicyWithValueHead | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        accelerator: Accelerator | None = None,
    ) -> None:
        self.model_config = model_config
        self.config = ppo_config
        if accelerator is None:
            cuda = torch.cuda.is_available()
            accelerator = Accelerator(cpu=not cuda)
        self.accelerator = accelerator
        if policy is None:
            policy = PolicyWithValueHead.from_config(model_config, device=accelerator.device)
        self.tokenizer = tokenizer or policy.tokenizer or load_tokenizer(model_config.base_model)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.policy = policy
        self._params = [p for _, p in policy.trainable_named_parameters()]
        optimizer = torch.optim.AdamW(self._params, lr=ppo_config.learning_rate, weight_decay=ppo_config.weight_decay)
        self.model, self.optimizer = accelerator.prepare(policy, optimizer)
        if ppo_config.adaptive_kl:
            self.kl_ctl = AdaptiveKLController(ppo_config.init_kl_coef, ppo_config.kl_target, ppo_config.kl_horizon)
        else:
            self.kl_ctl = FixedKLController(ppo_config.init_kl_coef)
        self.step_count = 0
        seed = (ppo_config.seed or 0) + 1000 * accelerator.process_index  # different samples on each process
        self._sample_rng = torch.Generator().manual_seed(seed)
        self._shuffle_rng = torch.Generator().manual_seed(seed + 1)
        self._stop_ids: list[int] | None = None

    # ------------------------------------------------------------------ generation
    def generate(self, prompts: Sequence[str]) -> tuple[list[torch.Tensor], list[torch.Tensor], list[str]]:
        """Sample one response per prompt (see `agents.auto_user.generation.sample_responses`).

        Args:
            prompts: Fully formatted prompts; each is truncated from the left to `max_query_length` tokens.

        Returns:
            query tensors, response tensors (1-D LongTensors on CPU) and decoded response texts.
        """
        if self._stop_ids is None:
            self._stop_ids = stop_token_ids(self.tokenizer, self.model_config.stop_at_newline)
        seed = int(torch.randint(0, 2**62, (1,), generator=self._sample_rng))
        model = self.accelerator.unwrap_model(self.model).pretrained_model
        was_training = model.training
        model.eval()
        try:
            return sample_responses(
                model, self.tokenizer, prompts, self.model_config, self._stop_ids, seed, self.accelerator.device
            )
        finally:
            model.train(was_training)

    # ------------------------------------------------------------------ forward helpers
    def _forward_stats(
        self, queries: Sequence[torch.Tensor], responses: Sequence[torch.Tensor], reference: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """No-grad batched pass: response log-probs (B, R), values (B, R) (zeros for reference) and mask (B, R)."""
        width = max(int(r.numel()) for r in responses)
        logps, values, masks = [], [], []
        size = self.config.mini_batch_size
        policy = self.accelerator.unwrap_model(self.model)
        with torch.no_grad():
            for start in range(0, len(queries), size):
                mb = pack(queries[start : start + size], responses[start : start + size],
                          self.tokenizer.pad_token_id, self.accelerator.device)
                if reference:
                    with self.accelerator.autocast():
                        logits = policy.reference_logits(
                            mb.input_ids, mb.attention_mask, mb.position_ids, mb.logits_to_keep
                        )
                    vals = torch.zeros(mb.input_ids.shape, device=logits.device)
                else:
                    logits, vals = self.model(mb.input_ids, mb.attention_mask, mb.position_ids, mb.logits_to_keep)
                resp_logits, resp_values = gather_response(logits, vals.float(), mb)
                logps.append(logprobs_from_logits(resp_logits, mb.response_tokens))
                values.append(resp_values)
                masks.append(mb.response_mask)
        return (pad_response_aligned(logps, width), pad_response_aligned(values, width),
                pad_response_aligned(masks, width).long())

    def _reduce(self, value: torch.Tensor | float) -> float:
        tensor = torch.as_tensor(value, dtype=torch.float32, device=self.accelerator.device)
        return float(self.accelerator.reduce(tensor, reduction="mean"))

    # ------------------------------------------------------------------ optimisation
    def _optimizer_step(
        self,
        group: list[torch.Tensor],
        queries: Sequence[torch.Tensor],
        responses: Sequence[torch.Tensor],
        rollout: dict[str, torch.Tensor],
        stats: dict[str, list[float]],
    ) -> bool:
        """Accumulate gradients over the mini-batches in `group`, then clip and step. False if anything non-finite."""
        cfg = self.config
        for k, idx in enumerate(group):
            mb = pack([queries[i] for i in idx], [responses[i] for i in idx],
                      self.tokenizer.pad_token_id, self.accelerator.device)
            width = mb.response_mask.shape[1]
            old_logp, old_values = rollout["logprobs"][idx, :width], rollout["values"][idx, :width]
            advantages, returns = rollout["advantages"][idx, :width], rollout["returns"][idx, :width]
            mask = mb.response_mask
            # Only the last micro-batch of an accumulation group needs the cross-process gradient sync.
            sync = nullcontext() if k == len(group) - 1 else self.accelerator.no_sync(self.model)
            with sync:
                logits, vpred_all = self.model(
                    mb.input_ids, mb.attention_mask, mb.position_ids, mb.logits_to_keep
                )
                resp_logits, vpred = gather_response(logits, vpred_all.float(), mb)
                logp = logprobs_from_logits(resp_logits, mb.response_tokens)
                with torch.set_grad_enabled(cfg.entropy_coef > 0):
                    entropy = masked_mean(entropy_from_logits(resp_logits.float()), mask)
                pg_loss, pg_clipfrac, mb_kl = clipped_policy_loss(logp, old_logp, advantages, mask, cfg.cliprange)
                vf_loss, vf_clipfrac = clipped_value_loss(vpred, old_values, returns, mask, cfg.cliprange_value)
                loss = pg_loss + cfg.vf_coef * vf_loss - cfg.entropy_coef * entropy
                finite = self._reduce(torch.isfinite(loss).float()) == 1.0  # every process must agree
                if not finite:
                    self.optimizer.zero_grad(set_to_none=True)
                    return False
                self.accelerator.backward(loss / len(group))
            for name, val in (("ppo/loss/policy", pg_loss), ("ppo/loss/value", vf_loss), ("ppo/loss/total", loss),
                              ("ppo/policy/entropy", entropy), ("ppo/policy/approxkl", mb_kl),
                              ("ppo/policy/clipfrac", pg_clipfrac), ("ppo/val/vpred", masked_mean(vpred, mask)),
                              ("ppo/val/clipfrac", vf_clipfrac)):
                stats[name].append(float(val.detach()))
        if cfg.max_grad_norm is not None:
            grad_norm = self.accelerator.clip_grad_norm_(self._params, cfg.max_grad_norm)
            if self._reduce(torch.isfinite(torch.as_tensor(grad_norm)).float()) != 1.0:
                self.optimizer.zero_grad(set_to_none=True)
                return False
            stats["ppo/grad_norm"].append(float(grad_norm))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return True

    def _validate(self, queries: Sequence[torch.Tensor], responses: Sequence[torch.Tensor], scores: Any) -> None:
        if not (len(queries) == len(responses) == len(scores)) or not queries:
            raise ValueError(
                f"queries, responses and scores must be non-empty and of equal length, got "
                f"{len(queries)}, {len(responses)}, {len(scores)}"
            )
        for name, seqs in (("queries", queries), ("responses", responses)):
            for i, seq in enumerate(seqs):
                if seq.dim() != 1 or seq.numel() == 0:
                    raise ValueError(f"{name}[{i}] must be a non-empty 1-D tensor, got shape {tuple(seq.shape)}")

    def step(
        self,
        queries: Sequence[torch.Tensor],
        responses: Sequence[torch.Tensor],
        scores: Sequence[float] | Sequence[torch.Tensor] | torch.Tensor,
    ) -> dict[str, float]:
        """Run one verified PPO update on a batch of rollouts.

        Args:
            queries: 1-D token tensors (the prompts as the policy saw them).
            responses: 1-D token tensors (the sampled responses).
            scores: One scalar score per (query, response).

        Returns:
            Metrics; always contains every name in `training.ppo.EXPECTED_PPO_METRICS`.
        """
        t0 = time.perf_counter()
        self._validate(queries, responses, scores)
        cfg = self.config
        queries = [q.long().cpu() for q in queries]
        responses = [r.long().cpu() for r in responses]
        scores_t = torch.tensor([float(s) for s in scores], dtype=torch.float32, device=self.accelerator.device)
        if not all_finite(scores_t):
            raise ValueError(f"scores must be finite, got {scores_t.tolist()}")
        batch = len(queries)

        # Rollout statistics under the current (pre-update) policy and the reference policy.
        self.model.train()
        old_logp, old_values, mask = self._forward_stats(queries, responses)
        ref_logp, _, _ = self._forward_stats(queries, responses, reference=True)
        maskf = mask.float()
        kl_coef = self.kl_ctl.value
        rewards = per_token_rewards(scores_t, old_logp, ref_logp, mask, kl_coef)  # (B, R)
        advantages, returns = compute_gae(rewards, old_values, mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:
            advantages = masked_whiten(advantages, mask)
        rollout = {"logprobs": old_logp, "values": old_values, "advantages": advantages, "returns": returns}

        # PPO epochs with per-epoch KL verification.
        snapshot = UpdateSnapshot(self._params, self.optimizer)
        stats: dict[str, list[float]] = defaultdict(list)
        verified, stop_epoch, epochs_done, nonfinite, post_kl = True, cfg.ppo_epochs, 0, 0, 0.0
        backward = cfg.mini_batch_size * cfg.gradient_accumulation_steps
        guarded = cfg.target_kl is not None or cfg.max_kl is not None
        progress = tqdm(total=cfg.ppo_epochs * math.ceil(batch / backward), desc="ppo update", unit="step",
                        leave=False, disable=not self.accelerator.is_main_process)
        for epoch in range(cfg.ppo_epochs):
            perm = torch.randperm(batch, generator=self._shuffle_rng)
            for g in range(0, batch, backward):
                progress.update(1)
                chunk = perm[g : g + backward]
                group = [chunk[m : m + cfg.mini_batch_size] for m in range(0, len(chunk), cfg.mini_batch_size)]
                if not self._optimizer_step(group, queries, responses, rollout, stats):
                    nonfinite += 1
                    verified = False
                    break
            if not verified:
                stop_epoch = epoch
                break
            epochs_done = epoch + 1
            if not guarded and epoch < cfg.ppo_epochs - 1:
                continue  # no guard to evaluate: measure the KL once, after the last epoch
            new_logp, _, _ = self._forward_stats(queries, responses)
            post_kl = self._reduce(approx_kl(new_logp, old_logp, mask))
            if cfg.max_kl is not None and not post_kl <= cfg.max_kl:  # `not <=` also rejects NaN
                verified, stop_epoch = False, epoch
                break
            if cfg.target_kl is not None and post_kl > cfg.target_kl:
                stop_epoch = epoch
                break
        progress.close()
        if not verified:
            snapshot.restore(self.optimizer)

        # KL controller: once per step, with the batch-mean per-sequence KL of the rollouts.
        mean_kl = self._reduce(((old_logp - ref_logp) * maskf).sum(1).mean())
        self.kl_ctl.update(mean_kl, batch * self.accelerator.num_processes)
        self.step_count += 1

        nan = float("nan")
        metrics = {name: self._reduce(sum(v) / len(v)) if v else nan for name, v in stats.items()}
        for name in ("ppo/loss/policy", "ppo/loss/value", "ppo/loss/total", "ppo/policy/entropy",
                     "ppo/policy/approxkl", "ppo/policy/clipfrac", "ppo/val/vpred", "ppo/val/clipfrac"):
            metrics.setdefault(name, nan)
        metrics.update({
            "ppo/returns/mean": self._reduce(masked_mean(returns, mask)),
            "ppo/advantages/mean": self._reduce(masked_mean(advantages, mask)),
            "ppo/mean_non_score_reward": self._reduce((rewards * maskf).sum(1).mean() - scores_t.mean()),
            "ppo/mean_scores": self._reduce(scores_t.mean()),
            "ppo/learning_rate": float(self.optimizer.param_groups[0]["lr"]),
            "tokens/response_len_mean": self._reduce(maskf.sum(1).mean()),
            "objective/kl": mean_kl,
            "objective/kl_coef": kl_coef,
            "verification/verified": float(verified),
            "verification/early_stop_epoch": float(stop_epoch),
            "verification/epochs_completed": float(epochs_done if verified else 0),
            "verification/approxkl": post_kl,
            "verification/nonfinite_steps": float(nonfinite),
            "time/ppo/total": time.perf_counter() - t0,
        })
        return metrics

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Trainer state for exact resumption (the policy weights are saved separately with `save_pretrained`)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "kl_coef": self.kl_ctl.value,
            "step_count": self.step_count,
            "sample_rng": self._sample_rng.get_state(),
            "shuffle_rng": self._shuffle_rng.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state produced by `state_dict`."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.kl_ctl.value = float(state["kl_coef"])
        self.step_count = int(state["step_count"])
        if "sample_rng" in state:
            self._sample_rng.set_state(state["sample_rng"])
        if "shuffle_rng" in state:
            self._shuffle_rng.set_state(state["shuffle_rng"])

    def save_pretrained(self, save_directory: str) -> None:
        """Save the policy (adapter or weights, value head, tokenizer) from the main process."""
        if self.accelerator.is_main_process:
            self.accelerator.unwrap_model(self.model).save_pretrained(save_directory)
