"""PPO trainer with the classic `step(queries, responses, scores)` contract and guarded (rollback-able) updates.

One `step` reads top to bottom as four phases, each timed into `time/update/<phase>`:

    rollout statistics   old log-probs and values (kept from the sampling pass, or one pass), reference log-probs
                         (one pass, unless the adapter is still a no-op), KL-shaped rewards, GAE
    PPO epochs           shuffled mini-batch updates; after each epoch the update guard reads the KL to the sampling
                         policy (`training.ppo.update_guard`) and goes on, stops early, or rolls the update back
    KL controller        one update per step from the rollouts' KL to the reference
    metrics              every name in `PPO_METRICS`
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from accelerate import Accelerator
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from agents.auto_user.generation import SamplingTrace, sample_responses_traced, stop_token_ids
from training.ppo.batching import gather_response, optimizer_step_chunks, pack, pad_response_aligned
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
from training.ppo.update_guard import GuardDecision, UpdateSnapshot, all_finite, kl_guard
from training.seeds import trainer_seeds

__all__ = [
    "BATCH_METRICS",
    "MINIBATCH_METRICS",
    "PPO_METRICS",
    "THROUGHPUT_METRICS",
    "TIMING_METRICS",
    "UPDATE_GUARD_METRICS",
    "PPOTrainer",
    "RolloutStatistics",
    "UpdateOutcome",
]

# ---------------------------------------------------------------------------------------------------- metric names
# The one list of what `PPOTrainer.step` returns; tests, plots and the training log iterate over these.

#: Means over the update's mini-batches (NaN when no optimizer step ran, e.g. the first loss was not finite).
MINIBATCH_METRICS: tuple[str, ...] = (
    "ppo/loss/policy",  # clipped surrogate loss
    "ppo/loss/value",  # clipped value loss
    "ppo/loss/total",  # policy + vf_coef * value - entropy_coef * entropy
    "ppo/policy/entropy",  # nats per response token
    "ppo/policy/approxkl",  # KL(old || new) on the mini-batch, before its optimizer step
    "ppo/policy/clipfrac",  # fraction of tokens whose ratio was clipped
    "ppo/val/vpred",  # mean predicted value
    "ppo/val/clipfrac",  # fraction of tokens whose value was clipped
    "ppo/grad_norm",  # gradient norm before clipping (NaN when `max_grad_norm` is None)
)
#: Measured once per step on the whole batch.
BATCH_METRICS: tuple[str, ...] = (
    "ppo/returns/mean",
    "ppo/advantages/mean",
    "ppo/mean_non_score_reward",  # the KL penalty's share of the per-token rewards, per sequence
    "ppo/mean_scores",
    "ppo/learning_rate",
    "tokens/response_len_mean",
    "objective/kl",  # KL(policy || reference) per sequence, over the rollouts
    "objective/kl_coef",  # the KL coefficient the rewards were shaped with
    "ppo/old_stats_from_sampling",  # share of samples whose pre-update log-probs and values the sampling pass gave
    "ppo/reference_is_policy",  # 1 when the adapter was still a no-op, so the reference pass was not needed
)
#: What the update guard decided (`training.ppo.update_guard`); about the PPO update, not about bookings.
UPDATE_GUARD_METRICS: tuple[str, ...] = (
    "update/accepted",  # 1 if the update was kept, 0 if it was rolled back
    "update/rolled_back_kl",  # 1 if rolled back because the KL after an epoch exceeded `max_kl` (or was NaN)
    "update/rolled_back_nonfinite",  # 1 if rolled back because a loss or gradient was not finite
    "update/early_stop_epoch",  # the epoch after which the update stopped; `ppo_epochs` when it ran them all
    "update/epochs_completed",  # epochs whose updates were kept (0 when rolled back)
    "update/approxkl",  # the KL the guard last read (`PPOConfig.kl_guard_measure`; 0 if never measured)
)
#: Seconds spent in each phase of one `step`.
TIMING_METRICS: tuple[str, ...] = (
    "time/update/rollout_stats",  # old log-probs and values (a no-grad pass over what sampling did not give), GAE
    "time/update/reference",  # reference log-probs (one no-grad pass, adapter disabled; none while it is a no-op)
    "time/update/minibatches",  # mini-batch forward/backward and optimizer steps, all epochs
    "time/update/kl_check",  # the update guard's no-grad passes after the epochs (kl_guard_measure "batch")
    "time/update/total",
)
#: Throughput of one `step`.
THROUGHPUT_METRICS: tuple[str, ...] = (
    "time/update_samples_per_second",  # batch samples / `time/update/total`
)
#: Every name that every `PPOTrainer.step` result contains.
PPO_METRICS: tuple[str, ...] = (MINIBATCH_METRICS + BATCH_METRICS + UPDATE_GUARD_METRICS + TIMING_METRICS
                                 + THROUGHPUT_METRICS)


class RolloutStatistics(NamedTuple):
    """What the pre-update policy and the reference say about a batch; fixed for the whole update.

    All tensors are response-aligned, (B, R) with R the longest response, except `scores` (B,).
    """

    logprobs: torch.Tensor  # (B, R) log-probs of the response tokens under the sampling policy
    values: torch.Tensor  # (B, R) value predictions
    ref_logprobs: torch.Tensor  # (B, R) log-probs under the reference policy
    mask: torch.Tensor  # (B, R) long, 1 on real response tokens
    rewards: torch.Tensor  # (B, R) -kl_coef * KL per token, plus the score on the last token
    advantages: torch.Tensor  # (B, R) GAE advantages (whitened if configured)
    returns: torch.Tensor  # (B, R) advantages + values (before whitening)
    scores: torch.Tensor  # (B,)
    kl_coef: float
    from_sampling: float = 0.0  # share of samples whose `logprobs` and `values` the sampling pass gave
    reference_is_policy: bool = False  # the adapter was still a no-op: `ref_logprobs` are `logprobs`, no pass


@dataclass
class UpdateOutcome:
    """How the PPO epochs of one step ended, and the mini-batch statistics they produced."""

    early_stop_epoch: int
    epochs_completed: int = 0
    rolled_back_kl: bool = False
    rolled_back_nonfinite: bool = False
    approxkl: float = 0.0
    minibatch_stats: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    minibatch_seconds: float = 0.0
    kl_check_seconds: float = 0.0

    @property
    def accepted(self) -> bool:
        return not (self.rolled_back_kl or self.rolled_back_nonfinite)


class PPOTrainer:
    """Proximal Policy Optimization for a causal LM policy with a value head.

    Each `step` computes rollout log-probabilities, values and reference log-probabilities, shapes per-token rewards
    with a KL penalty, estimates advantages with GAE, then runs `ppo_epochs` of clipped-PPO updates over shuffled
    mini-batches. After every epoch the update guard (`training.ppo.update_guard`) reads the approximate KL to the
    pre-update policy (`PPOConfig.kl_guard_measure`): above `target_kl` the remaining epochs are skipped,
    above `max_kl` (or on any non-finite loss/gradient) the update is rolled back and the trainable weights and
    optimizer state are restored exactly (`update/accepted` is then 0).

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
        sampling_seed, shuffle_seed = trainer_seeds(ppo_config.seed or 0, accelerator.process_index)
        self._sample_rng = torch.Generator().manual_seed(sampling_seed)
        self._shuffle_rng = torch.Generator().manual_seed(shuffle_seed)
        self._stop_ids: list[int] | None = None
        # Sample from a merged copy of the policy in this dtype (see `PolicyWithValueHead.sampling_copy`); None:
        # sample from the training model itself (its adapter layers, float32).
        self.sampling_dtype: torch.dtype | None = None
        self._sampling_copies: dict[bool, tuple[tuple, nn.Module]] = {}  # reference? -> (made from, copy)
        # (query, response) token tuples -> (log-probs, values) the sampling pass computed, valid while the trainable
        # weights are still those of `_sampled_at` (see `PPOConfig.reuse_sampling_pass`).
        self._sampled: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[torch.Tensor, torch.Tensor]] = {}
        self._sampled_at: tuple[int, ...] | None = None

    # ------------------------------------------------------------------ generation
    def reseed_sampling(self, seed: int) -> None:
        """Restart the sampling random stream: what `generate` samples next depends on `seed` alone, not on the
        training seed or on how much was sampled before (the end-of-run comparison plays base and trained from the
        same stream, so base is the same in every run and both models see the same sampling noise)."""
        self._sample_rng.manual_seed(seed)

    def generate(
        self, prompts: Sequence[str], reference: bool = False
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[str]]:
        """Sample one response per prompt (see `agents.auto_user.generation.sample_responses`) from
        `sampling_model`, with the next seed of the trainer's sampling stream.

        Args:
            prompts: Fully formatted prompts; each is truncated from the left to `max_query_length` tokens.
            reference: sample from the reference policy (the base model: adapter disabled) instead.

        Returns:
            query tensors, response tensors (1-D LongTensors on CPU) and decoded response texts.
        """
        if self._stop_ids is None:
            self._stop_ids = stop_token_ids(self.tokenizer, self.model_config.stop_at_newline)
        seed = int(torch.randint(0, 2**62, (1,), generator=self._sample_rng))
        trace = not reference and self.samples_exactly()
        with self.sampling_model(reference) as model:
            queries, responses, texts, sampling_trace = sample_responses_traced(
                model, self.tokenizer, prompts, self.model_config, self._stop_ids, seed, self.accelerator.device,
                trace=trace)
        if sampling_trace is not None:
            self._remember_sampling_pass(queries, responses, sampling_trace)
        return queries, responses, texts

    def samples_exactly(self) -> bool:
        """Whether `PPOConfig.reuse_sampling_pass` applies: the model rollouts sample from computes what the update
        computes (the training model itself or a merged copy in the weights' own dtype, no autocast, no dropout),
        so the sampling pass's log-probs and values are the pre-update policy's up to floating-point noise."""
        policy = self.accelerator.unwrap_model(self.model)
        weights_dtype = next(policy.pretrained_model.parameters()).dtype
        return (self.config.reuse_sampling_pass and policy.autocast_dtype is None
                and policy.model_config.disable_dropout
                and self.sampling_dtype in (None, weights_dtype))

    def _weights_version(self) -> tuple[int, ...]:
        """Changes with every in-place write to a trainable weight (optimizer steps, rollbacks, loaded states)."""
        return tuple(p._version for p in self._params)

    @torch.no_grad()
    def _remember_sampling_pass(self, queries: list[torch.Tensor], responses: list[torch.Tensor],
                                trace: SamplingTrace) -> None:
        """Keep each sampled response's log-probs (as PPO scores them) and values for the next `step`."""
        version = self._weights_version()
        if version != self._sampled_at:  # older entries belong to other weights
            self._sampled.clear()
            self._sampled_at = version
        policy = self.accelerator.unwrap_model(self.model)
        device = self.accelerator.device
        for query, response, logits, hidden in zip(queries, responses, trace.logits, trace.hidden, strict=True):
            logprobs = logprobs_from_logits(self._scoring_logits(logits.to(device)), response.to(device))
            values = policy.value_head(hidden.to(device)).squeeze(-1).float()
            self._sampled[(tuple(query.tolist()), tuple(response.tolist()))] = (logprobs, values)

    @contextlib.contextmanager
    def sampling_model(self, reference: bool = False) -> Iterator[nn.Module]:
        """The model rollouts sample from, in eval mode: when `sampling_dtype` is set, a merged copy of the policy
        (or of the reference) in that dtype (`_sampling_copy`); otherwise the training model itself (its adapter
        disabled for the reference). Evaluation samples from it too (``training.evaluation``)."""
        policy = self.accelerator.unwrap_model(self.model)
        if self.sampling_dtype is not None:
            yield self._sampling_copy(policy, reference)
            return
        context = policy.reference_generator() if reference else nullcontext(policy.pretrained_model)
        with context as model:
            was_training = model.training
            model.eval()
            try:
                yield model
            finally:
                model.train(was_training)

    def _sampling_copy(self, policy: PolicyWithValueHead, reference: bool) -> nn.Module:
        """The cached merged copy of the policy (or reference), rebuilt when a trainable weight or `sampling_dtype`
        has changed.

        A tensor's version counter moves with every in-place write (optimizer steps, a rolled-back update's
        restore, loading a state dict), so the copy can never be staler than the weights it was made from.
        """
        made_from = (self.sampling_dtype, *(() if reference else (p._version for p in self._params)))
        cached = self._sampling_copies.get(reference)
        if cached is None or cached[0] != made_from:
            self._sampling_copies.pop(reference, None)  # free the old copy before making the new one
            cached = (made_from, policy.sampling_copy(self.sampling_dtype, reference=reference))
            self._sampling_copies[reference] = cached
        return cached[1]

    # ------------------------------------------------------------------ forward helpers
    def batched_forward_pass(
        self, queries: Sequence[torch.Tensor], responses: Sequence[torch.Tensor], reference: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """No-grad batched pass: response log-probs (B, R), values (B, R) (zeros for reference) and mask (B, R).

        Samples are batched in order of length (query, then response), so each batch pads to neighbours of
        about its own length; the rows come back in the caller's order.
        """
        width = max(int(r.numel()) for r in responses)
        logps, values, masks = [], [], []
        size = self.config.mini_batch_size
        policy = self.accelerator.unwrap_model(self.model)
        order = sorted(range(len(queries)), key=lambda i: (int(queries[i].numel()), int(responses[i].numel())))
        with torch.no_grad():
            for start in range(0, len(order), size):
                idx = order[start : start + size]
                mb = pack([queries[i] for i in idx], [responses[i] for i in idx],
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
                resp_logits = self._scoring_logits(resp_logits)
                logps.append(logprobs_from_logits(resp_logits, mb.response_tokens))
                values.append(resp_values)
                masks.append(mb.response_mask)
        restore = torch.empty(len(order), dtype=torch.long)
        restore[torch.tensor(order)] = torch.arange(len(order))  # sorted position of each original row
        restore = restore.to(self.accelerator.device)
        return (pad_response_aligned(logps, width)[restore], pad_response_aligned(values, width)[restore],
                pad_response_aligned(masks, width).long()[restore])

    def _scoring_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The logits PPO scores responses with: divided by the sampling temperature with `tempered_logprobs`."""
        if self.config.tempered_logprobs:
            return logits / self.model_config.temperature
        return logits

    def _reduce(self, value: torch.Tensor | float) -> float:
        tensor = torch.as_tensor(value, dtype=torch.float32, device=self.accelerator.device)
        return float(self.accelerator.reduce(tensor, reduction="mean"))

    def _clock(self) -> float:
        """`time.perf_counter()` after the device has finished its queued work, so phase timings are honest."""
        if self.accelerator.device.type == "cuda":
            torch.cuda.synchronize(self.accelerator.device)
        return time.perf_counter()

    # ------------------------------------------------------------------ the step, phase by phase
    def step(
        self,
        queries: Sequence[torch.Tensor],
        responses: Sequence[torch.Tensor],
        scores: Sequence[float] | Sequence[torch.Tensor] | torch.Tensor,
    ) -> dict[str, float]:
        """Run one guarded PPO update on a batch of rollouts.

        Args:
            queries: 1-D token tensors (the prompts as the policy saw them).
            responses: 1-D token tensors (the sampled responses).
            scores: One scalar score per (query, response).

        Returns:
            Metrics; always contains every name in `PPO_METRICS`.
        """
        started = self._clock()
        queries, responses, scores_t = self._prepare_inputs(queries, responses, scores)
        self.model.train()
        rollout, seconds = self._rollout_statistics(queries, responses, scores_t)
        outcome = self._run_epochs(queries, responses, rollout)
        objective_kl = self._update_kl_controller(rollout)
        self.step_count += 1
        seconds |= {
            "time/update/minibatches": outcome.minibatch_seconds,
            "time/update/kl_check": outcome.kl_check_seconds,
            "time/update/total": self._clock() - started,
        }
        seconds["time/update_samples_per_second"] = len(queries) / max(seconds["time/update/total"], 1e-9)
        return self._metrics(rollout, outcome, objective_kl) | seconds

    def _prepare_inputs(
        self, queries: Sequence[torch.Tensor], responses: Sequence[torch.Tensor], scores: Any
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Validate the batch; return CPU LongTensor queries and responses and the scores (B,) on the device."""
        if not (len(queries) == len(responses) == len(scores)) or not queries:
            raise ValueError(
                f"queries, responses and scores must be non-empty and of equal length, got "
                f"{len(queries)}, {len(responses)}, {len(scores)}"
            )
        for name, seqs in (("queries", queries), ("responses", responses)):
            for i, seq in enumerate(seqs):
                if seq.dim() != 1 or seq.numel() == 0:
                    raise ValueError(f"{name}[{i}] must be a non-empty 1-D tensor, got shape {tuple(seq.shape)}")
        scores_t = torch.tensor([float(s) for s in scores], dtype=torch.float32, device=self.accelerator.device)
        if not all_finite(scores_t):
            raise ValueError(f"scores must be finite, got {scores_t.tolist()}")
        return [q.long().cpu() for q in queries], [r.long().cpu() for r in responses], scores_t

    def _rollout_statistics(
        self, queries: list[torch.Tensor], responses: list[torch.Tensor], scores: torch.Tensor
    ) -> tuple[RolloutStatistics, dict[str, float]]:
        """Phase 1: log-probs and values of the pre-update and reference policies, KL-shaped rewards, GAE."""
        cfg = self.config
        began = self._clock()
        logprobs, values, mask, from_sampling = self._pre_update_statistics(queries, responses)
        policy_done = self._clock()
        # A fresh adapter adds nothing: the policy is the reference, and the reference pass would repeat `logprobs`.
        reference_is_policy = self.accelerator.unwrap_model(self.model).adapter_is_identity()
        if reference_is_policy:
            ref_logprobs = logprobs.clone()
        else:
            ref_logprobs, _, _ = self.batched_forward_pass(queries, responses, reference=True)
        reference_done = self._clock()
        kl_coef = self.kl_ctl.value
        rewards = per_token_rewards(scores, logprobs, ref_logprobs, mask, kl_coef)  # (B, R)
        advantages, returns = compute_gae(rewards, values, mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:
            advantages = masked_whiten(advantages, mask)
        rollout = RolloutStatistics(logprobs, values, ref_logprobs, mask, rewards, advantages, returns, scores, kl_coef,
                                    from_sampling, reference_is_policy)
        seconds = {
            "time/update/rollout_stats": (policy_done - began) + (self._clock() - reference_done),
            "time/update/reference": reference_done - policy_done,
        }
        return rollout, seconds

    def _pre_update_statistics(
        self, queries: list[torch.Tensor], responses: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """Log-probs (B, R), values (B, R) and mask (B, R) of the pre-update policy, and the share of samples whose
        statistics came from the sampling pass (`PPOConfig.reuse_sampling_pass`); a no-grad pass gives the rest."""
        device = self.accelerator.device
        width = max(int(r.numel()) for r in responses)
        logprobs = torch.zeros(len(queries), width, device=device)
        values = torch.zeros(len(queries), width, device=device)
        mask = torch.zeros(len(queries), width, dtype=torch.long, device=device)
        found: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        if self._sampled and self._sampled_at == self._weights_version():
            for i, (query, response) in enumerate(zip(queries, responses, strict=True)):
                hit = self._sampled.get((tuple(query.tolist()), tuple(response.tolist())))
                if hit is not None:
                    found[i] = hit
        self._sampled.clear()  # the update is about to change the weights
        self._sampled_at = None
        missing = [i for i in range(len(queries)) if i not in found]
        if missing:
            pass_logprobs, pass_values, _ = self.batched_forward_pass([queries[i] for i in missing],
                                                                      [responses[i] for i in missing])
            rows = torch.tensor(missing, device=device)
            logprobs[rows, : pass_logprobs.shape[1]] = pass_logprobs
            values[rows, : pass_values.shape[1]] = pass_values
        for i, (row_logprobs, row_values) in found.items():
            logprobs[i, : row_logprobs.numel()] = row_logprobs
            values[i, : row_values.numel()] = row_values
        for i, response in enumerate(responses):
            mask[i, : int(response.numel())] = 1
        return logprobs * mask, values * mask, mask, len(found) / len(queries)

    def _run_epochs(
        self, queries: list[torch.Tensor], responses: list[torch.Tensor], rollout: RolloutStatistics
    ) -> UpdateOutcome:
        """Phase 2: `ppo_epochs` passes of shuffled mini-batch updates, each followed by the update guard.

        The guard (`training.ppo.update_guard`) decides after every epoch (only after the last one when neither
        `target_kl` nor `max_kl` is set) from an approximate KL between the sampling policy and the current one.
        When one optimizer step holds the whole batch, the next epoch's forward runs at exactly the weights the
        epoch left, so it is the measurement (decided before that step is applied). Otherwise the reading is
        `PPOConfig.kl_guard_measure`'s: the token-weighted KL the epoch's own mini-batch forwards read before
        their optimizer steps ("minibatches", no pass of its own), or a no-grad pass over the batch after the
        epoch ("batch"). (One optimizer step's samples alone were tried and rejected: on the main recipe's batch,
        4 samples read a KL of 3.1 after an epoch whose mini-batches averaged 0.07, and rolled the update back.)
        A non-finite loss or gradient rolls the update back too; a rolled-back update restores the snapshot taken
        here.
        """
        cfg = self.config
        snapshot = UpdateSnapshot(self._params, self.optimizer)
        outcome = UpdateOutcome(early_stop_epoch=cfg.ppo_epochs)
        samples_per_optimizer_step = cfg.mini_batch_size * cfg.gradient_accumulation_steps
        one_step_per_epoch = samples_per_optimizer_step >= len(queries)
        guarded = cfg.target_kl is not None or cfg.max_kl is not None
        progress = tqdm(total=cfg.ppo_epochs * math.ceil(len(queries) / samples_per_optimizer_step),
                        desc="ppo update", unit="step", leave=False, disable=not self.accelerator.is_main_process)
        lengths = [int(q.numel()) for q in queries]  # queries are most of each row, and pad to the longest
        everything = torch.arange(len(queries))
        for epoch in range(cfg.ppo_epochs):
            began = self._clock()
            chunks = optimizer_step_chunks(lengths, samples_per_optimizer_step, self._shuffle_rng,
                                           cfg.group_by_length)
            stopped = False
            epoch_kl, epoch_tokens = 0.0, 0.0
            for first, chunk in enumerate(chunks):
                progress.update(1)
                group = [chunk[m : m + cfg.mini_batch_size] for m in range(0, len(chunk), cfg.mini_batch_size)]
                step_stats: dict[str, list[float]] = defaultdict(list)
                finite, group_kl, group_tokens = self._accumulate_gradients(group, queries, responses, rollout,
                                                                            step_stats)
                if finite and guarded and epoch > 0 and first == 0 and one_step_per_epoch:
                    # The whole batch, at the weights the previous epoch left: the guard's measurement, free.
                    outcome.approxkl = group_kl
                    decision = kl_guard(group_kl, cfg.target_kl, cfg.max_kl)
                    if decision is not GuardDecision.CONTINUE:
                        self.optimizer.zero_grad(set_to_none=True)
                        outcome.early_stop_epoch = epoch - 1
                        outcome.rolled_back_kl = decision is GuardDecision.ROLL_BACK
                        stopped = True
                        break
                if not (finite and self._apply_gradients(step_stats)):
                    outcome.rolled_back_nonfinite, outcome.early_stop_epoch = True, epoch
                    stopped = True
                    break
                epoch_kl, epoch_tokens = epoch_kl + group_kl * group_tokens, epoch_tokens + group_tokens
                for name, values in step_stats.items():
                    outcome.minibatch_stats[name].extend(values)
            outcome.minibatch_seconds += self._clock() - began
            if stopped:
                break
            outcome.epochs_completed = epoch + 1
            last = epoch == cfg.ppo_epochs - 1
            if not last and (not guarded or one_step_per_epoch):
                continue  # measured by the next epoch's forward, or not at all
            if cfg.kl_guard_measure == "batch":
                began = self._clock()
                outcome.approxkl = self._measure_kl(everything, queries, responses, rollout)
                outcome.kl_check_seconds += self._clock() - began
            else:
                outcome.approxkl = self._reduce(epoch_kl / max(epoch_tokens, 1.0))
            decision = kl_guard(outcome.approxkl, cfg.target_kl, cfg.max_kl)
            if decision is GuardDecision.ROLL_BACK:
                outcome.rolled_back_kl, outcome.early_stop_epoch = True, epoch
                break
            if decision is GuardDecision.STOP_EARLY:
                outcome.early_stop_epoch = epoch
                break
        progress.close()
        if not outcome.accepted:
            snapshot.restore(self.optimizer)
            outcome.epochs_completed = 0
        return outcome

    def _measure_kl(
        self, idx: torch.Tensor, queries: list[torch.Tensor], responses: list[torch.Tensor],
        rollout: RolloutStatistics,
    ) -> float:
        """KL(sampling policy || current policy) per token on the samples `idx` (one no-grad pass over them)."""
        logprobs, _, mask = self.batched_forward_pass([queries[i] for i in idx], [responses[i] for i in idx])
        width = mask.shape[1]
        return self._reduce(approx_kl(logprobs, rollout.logprobs[idx, :width], mask))

    def _accumulate_gradients(
        self,
        group: list[torch.Tensor],
        queries: Sequence[torch.Tensor],
        responses: Sequence[torch.Tensor],
        rollout: RolloutStatistics,
        stats: dict[str, list[float]],
    ) -> tuple[bool, float, float]:
        """Forward and backward over the mini-batches of one optimizer step (`group`), accumulating gradients.

        Returns whether every loss was finite (on every process), the approximate KL between the sampling policy
        and the weights these forwards ran at, per response token over the whole group (the guard's reading), and
        this process's response tokens in the group. Nothing is applied: `_apply_gradients` does that.

        Each mini-batch is packed to its own longest query and response, so its rollout statistics are sliced to
        that width (`[:, :width]`): responses are right-padded, so the first `width` columns are all of them.
        """
        cfg = self.config
        kl_sum, tokens = 0.0, 0.0
        for k, idx in enumerate(group):
            mb = pack([queries[i] for i in idx], [responses[i] for i in idx],
                      self.tokenizer.pad_token_id, self.accelerator.device)
            width = mb.response_mask.shape[1]
            old_logp, old_values = rollout.logprobs[idx, :width], rollout.values[idx, :width]
            advantages, returns = rollout.advantages[idx, :width], rollout.returns[idx, :width]
            mask = mb.response_mask
            # Only the last micro-batch of an accumulation group needs the cross-process gradient sync.
            sync = nullcontext() if k == len(group) - 1 else self.accelerator.no_sync(self.model)
            with sync:
                logits, vpred_all = self.model(
                    mb.input_ids, mb.attention_mask, mb.position_ids, mb.logits_to_keep
                )
                resp_logits, vpred = gather_response(logits, vpred_all.float(), mb)
                resp_logits = self._scoring_logits(resp_logits)
                logp = logprobs_from_logits(resp_logits, mb.response_tokens)
                with torch.set_grad_enabled(cfg.entropy_coef > 0):
                    entropy = masked_mean(entropy_from_logits(resp_logits.float()), mask)
                pg_loss, pg_clipfrac, mb_kl = clipped_policy_loss(logp, old_logp, advantages, mask, cfg.cliprange)
                vf_loss, vf_clipfrac = clipped_value_loss(vpred, old_values, returns, mask, cfg.cliprange_value)
                loss = pg_loss + cfg.vf_coef * vf_loss - cfg.entropy_coef * entropy
                finite = self._reduce(torch.isfinite(loss).float()) == 1.0  # every process must agree
                if not finite:
                    self.optimizer.zero_grad(set_to_none=True)
                    return False, math.nan, 0.0
                self.accelerator.backward(loss / len(group))
            mb_tokens = float(mask.sum())
            kl_sum, tokens = kl_sum + float(mb_kl) * mb_tokens, tokens + mb_tokens
            for name, val in (("ppo/loss/policy", pg_loss), ("ppo/loss/value", vf_loss), ("ppo/loss/total", loss),
                              ("ppo/policy/entropy", entropy), ("ppo/policy/approxkl", mb_kl),
                              ("ppo/policy/clipfrac", pg_clipfrac), ("ppo/val/vpred", masked_mean(vpred, mask)),
                              ("ppo/val/clipfrac", vf_clipfrac)):
                stats[name].append(float(val.detach()))
        return True, self._reduce(kl_sum / max(tokens, 1.0)), tokens

    def _apply_gradients(self, stats: dict[str, list[float]]) -> bool:
        """Clip the accumulated gradients and take the optimizer step. False (nothing applied) if the gradient norm
        is not finite."""
        cfg = self.config
        if cfg.max_grad_norm is not None:
            grad_norm = self.accelerator.clip_grad_norm_(self._params, cfg.max_grad_norm)
            if self._reduce(torch.isfinite(torch.as_tensor(grad_norm)).float()) != 1.0:
                self.optimizer.zero_grad(set_to_none=True)
                return False
            stats["ppo/grad_norm"].append(float(grad_norm))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return True

    def _update_kl_controller(self, rollout: RolloutStatistics) -> float:
        """Phase 3: one KL-controller update per step from the rollouts' KL to the reference; returns that KL."""
        kl_per_sequence = ((rollout.logprobs - rollout.ref_logprobs) * rollout.mask.float()).sum(1)  # (B,)
        objective_kl = self._reduce(kl_per_sequence.mean())
        self.kl_ctl.update(objective_kl, len(rollout.scores) * self.accelerator.num_processes)
        return objective_kl

    def _metrics(self, rollout: RolloutStatistics, outcome: UpdateOutcome, objective_kl: float) -> dict[str, float]:
        """Phase 4: every name in `MINIBATCH_METRICS`, `BATCH_METRICS` and `UPDATE_GUARD_METRICS`."""
        stats = outcome.minibatch_stats
        metrics = {name: self._reduce(sum(stats[name]) / len(stats[name])) if stats.get(name) else math.nan
                   for name in MINIBATCH_METRICS}
        mask, maskf = rollout.mask, rollout.mask.float()
        metrics |= {
            "ppo/returns/mean": self._reduce(masked_mean(rollout.returns, mask)),
            "ppo/advantages/mean": self._reduce(masked_mean(rollout.advantages, mask)),
            "ppo/mean_non_score_reward": self._reduce((rollout.rewards * maskf).sum(1).mean() - rollout.scores.mean()),
            "ppo/mean_scores": self._reduce(rollout.scores.mean()),
            "ppo/learning_rate": float(self.optimizer.param_groups[0]["lr"]),
            "tokens/response_len_mean": self._reduce(maskf.sum(1).mean()),
            "objective/kl": objective_kl,
            "objective/kl_coef": rollout.kl_coef,
            "ppo/old_stats_from_sampling": self._reduce(rollout.from_sampling),
            "ppo/reference_is_policy": float(rollout.reference_is_policy),
            "update/accepted": float(outcome.accepted),
            "update/rolled_back_kl": float(outcome.rolled_back_kl),
            "update/rolled_back_nonfinite": float(outcome.rolled_back_nonfinite),
            "update/early_stop_epoch": float(outcome.early_stop_epoch),
            "update/epochs_completed": float(outcome.epochs_completed),
            "update/approxkl": outcome.approxkl,
        }
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

    def save_pretrained(self, save_directory: str | Path) -> None:
        """Save the policy (adapter or weights, value head, tokenizer) from the main process.

        The one way the training loop writes `final_model/` and `checkpoint-N/` policies.
        """
        if self.accelerator.is_main_process:
            self.accelerator.unwrap_model(self.model).save_pretrained(save_directory)
