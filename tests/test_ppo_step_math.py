"""`PPOTrainer.step` computes textbook PPO, and the update guard's KL measurement changes nothing about the update
it guards.

The reference below is CleanRL's loop written out for a causal LM with the project's public pieces (packing, the
policy's forward, the loss functions of `training.ppo.core`): old log-probs and values, reference log-probs,
KL-shaped rewards, GAE, whitened advantages, then `ppo_epochs` passes over shuffled mini-batches with AdamW and
gradient clipping. The trainer must reach the same weights and report the same losses within float tolerance.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from agents.auto_user.tiny_models import build_tiny_model
from training.ppo import ModelConfig, PolicyWithValueHead, PPOConfig, PPOTrainer
from training.ppo.batching import gather_response, optimizer_step_chunks, pack, pad_response_aligned
from training.ppo.core import (
    clipped_policy_loss,
    clipped_value_loss,
    compute_gae,
    logprobs_from_logits,
    masked_whiten,
    per_token_rewards,
)

PROMPTS = ["Book a flight to London", "Hello", "Cancel my trip please", "What time is it", "Two adults, Friday"]


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # reproducible reductions, and no thread thrash on a shared 2-core machine
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny_models") / "llama", "llama", seed=0)


def _trainer(model_dir: Path, **ppo: object) -> PPOTrainer:
    mc = ModelConfig(base_model=str(model_dir), max_query_length=16, max_response_length=6, lora_r=8)
    kwargs: dict = {"mini_batch_size": 3, "learning_rate": 3e-3, "ppo_epochs": 3, "seed": 7}
    kwargs.update(ppo)
    torch.manual_seed(0)  # the value head's initialisation
    return PPOTrainer(mc, PPOConfig(**kwargs))


def _batch(trainer: PPOTrainer, n: int = 10) -> tuple[list[torch.Tensor], list[torch.Tensor], list[float]]:
    queries, responses, _ = trainer.generate((PROMPTS * n)[:n])
    return queries, responses, [float(i % 4) - 1.5 for i in range(n)]


def _trainable(policy: PolicyWithValueHead) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in policy.trainable_named_parameters()}


def _textbook_ppo(
    policy: PolicyWithValueHead, pc: PPOConfig, pad_id: int, kl_coef: float,
    queries: list[torch.Tensor], responses: list[torch.Tensor], scores: list[float],
) -> list[float]:
    """One PPO update of `policy` in place, written plainly; returns the total loss of every mini-batch."""
    params = [p for _, p in policy.trainable_named_parameters()]
    optimizer = torch.optim.AdamW(params, lr=pc.learning_rate, weight_decay=pc.weight_decay)
    width = max(int(r.numel()) for r in responses)
    with torch.no_grad():
        logps, values, ref_logps, masks = [], [], [], []
        for start in range(0, len(queries), pc.mini_batch_size):  # any batching gives the same rows
            mb = pack(queries[start : start + pc.mini_batch_size], responses[start : start + pc.mini_batch_size],
                      pad_id, "cpu")
            logits, vals = policy(mb.input_ids, mb.attention_mask, mb.position_ids, mb.logits_to_keep)
            resp_logits, resp_values = gather_response(logits, vals, mb)
            logps.append(logprobs_from_logits(resp_logits, mb.response_tokens))
            values.append(resp_values)
            masks.append(mb.response_mask)
            ref = policy.reference_logits(mb.input_ids, mb.attention_mask, mb.position_ids, mb.logits_to_keep)
            ref_logps.append(logprobs_from_logits(gather_response(ref, vals, mb)[0], mb.response_tokens))
        old_logp, old_values = pad_response_aligned(logps, width), pad_response_aligned(values, width)
        ref_logp, mask = pad_response_aligned(ref_logps, width), pad_response_aligned(masks, width).long()
        rewards = per_token_rewards(torch.tensor(scores), old_logp, ref_logp, mask, kl_coef)
        advantages, returns = compute_gae(rewards, old_values, mask, pc.gamma, pc.lam)
        advantages = masked_whiten(advantages, mask)
    shuffle = torch.Generator().manual_seed(pc.seed + 1)  # the trainer's shuffle stream (seed + 1)
    losses = []
    policy.train()
    for _ in range(pc.ppo_epochs):
        order = torch.randperm(len(queries), generator=shuffle)
        for start in range(0, len(queries), pc.mini_batch_size):
            idx = order[start : start + pc.mini_batch_size]
            mb = pack([queries[i] for i in idx], [responses[i] for i in idx], pad_id, "cpu")
            w = mb.response_mask.shape[1]
            logits, vals = policy(mb.input_ids, mb.attention_mask, mb.position_ids, mb.logits_to_keep)
            resp_logits, vpred = gather_response(logits, vals, mb)
            logp = logprobs_from_logits(resp_logits, mb.response_tokens)
            pg_loss, _, _ = clipped_policy_loss(logp, old_logp[idx, :w], advantages[idx, :w], mb.response_mask,
                                                pc.cliprange)
            vf_loss, _ = clipped_value_loss(vpred, old_values[idx, :w], returns[idx, :w], mb.response_mask,
                                            pc.cliprange_value)
            loss = pg_loss + pc.vf_coef * vf_loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, pc.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss))
    return losses


@pytest.mark.parametrize(("target_kl", "max_kl"), [(None, None), (1e6, 1e7)])
def test_step_is_textbook_ppo_and_the_guard_changes_nothing_it_does_not_decide(
    model_dir: Path, target_kl: float | None, max_kl: float | None
) -> None:
    trainer = _trainer(model_dir, target_kl=target_kl, max_kl=max_kl)
    queries, responses, scores = _batch(trainer)
    reference = copy.deepcopy(trainer.policy)
    initial = _trainable(reference)
    kl_coef = trainer.kl_ctl.value
    metrics = trainer.step(queries, responses, scores)
    losses = _textbook_ppo(reference, trainer.config, trainer.tokenizer.pad_token_id, kl_coef,
                           queries, responses, scores)
    assert metrics["update/accepted"] == 1.0 and metrics["update/epochs_completed"] == trainer.config.ppo_epochs
    assert metrics["ppo/old_stats_from_sampling"] == 1.0  # the reference recomputes what sampling gave the trainer
    assert metrics["ppo/reference_is_policy"] == 1.0  # a fresh adapter: the textbook's reference pass, skipped
    assert metrics["ppo/loss/total"] == pytest.approx(sum(losses) / len(losses), rel=1e-4, abs=1e-6)
    got, want = _trainable(trainer.policy), _trainable(reference)
    assert got.keys() == want.keys()
    assert any(not torch.equal(initial[n], want[n]) for n in want)  # the update moved the weights
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("measure", ["minibatches", "batch"])
@pytest.mark.parametrize("mini_batch_size", [3, 10])
def test_early_stop_after_one_epoch_leaves_what_one_epoch_leaves(model_dir: Path, mini_batch_size: int,
                                                                 measure: str) -> None:
    """The guard decides between epochs: on the epoch's own mini-batch readings, by a no-grad pass over the batch,
    or (when one optimizer step holds the whole batch) by the next epoch's forward, whose gradient must then not be
    applied. Either way, stopping after epoch 0 leaves exactly what one epoch leaves."""
    one_epoch = _trainer(model_dir, ppo_epochs=1, target_kl=None, max_kl=None, mini_batch_size=mini_batch_size,
                         reuse_sampling_pass=False)  # `stopped` did not sample the batch: both make the pass
    stopped = _trainer(model_dir, ppo_epochs=3, target_kl=1e-12, max_kl=None, mini_batch_size=mini_batch_size,
                       kl_guard_measure=measure)
    batch = _batch(one_epoch)
    one = one_epoch.step(*batch)
    metrics = stopped.step(*batch)
    assert metrics["update/accepted"] == 1.0
    assert metrics["update/early_stop_epoch"] == 0.0 and metrics["update/epochs_completed"] == 1.0
    assert metrics["update/approxkl"] > 1e-12
    passes = measure == "batch" and mini_batch_size < 10  # the fused and the mini-batch readings are free
    assert (metrics["time/update/kl_check"] > 0.0) == passes
    assert metrics["ppo/loss/total"] == pytest.approx(one["ppo/loss/total"], rel=1e-6)
    for name, value in _trainable(one_epoch.policy).items():
        assert torch.equal(_trainable(stopped.policy)[name], value), name


@pytest.mark.parametrize("measure", ["minibatches", "batch"])
def test_guard_rolls_back_after_the_last_epoch_and_restores_exactly(model_dir: Path, measure: str) -> None:
    """With one epoch there is no next forward: the KL the epoch's mini-batches read (or a no-grad pass over the
    batch) decides, and a rollback there restores the weights exactly."""
    trainer = _trainer(model_dir, ppo_epochs=1, target_kl=None, max_kl=1e-12, kl_guard_measure=measure)
    batch = _batch(trainer)
    before = _trainable(trainer.policy)
    metrics = trainer.step(*batch)
    assert metrics["update/rolled_back_kl"] == 1.0 and metrics["update/accepted"] == 0.0
    assert metrics["update/early_stop_epoch"] == 0.0 and metrics["update/approxkl"] > 1e-12
    assert (metrics["time/update/kl_check"] > 0.0) == (measure == "batch")
    assert all(torch.equal(before[n], p) for n, p in _trainable(trainer.policy).items())


def test_the_mini_batch_reading_lags_the_pass_after_the_epoch(model_dir: Path) -> None:
    """What "minibatches" gives up: each mini-batch reads the KL before its own optimizer step, so the epoch's
    reading is below the KL a pass over the batch measures after the epoch (both start from the same weights and
    apply the same update)."""
    readings = {}
    for measure in ("minibatches", "batch"):
        trainer = _trainer(model_dir, ppo_epochs=1, target_kl=None, max_kl=1e6, kl_guard_measure=measure)
        readings[measure] = trainer.step(*_batch(trainer))["update/approxkl"]
    assert 0.0 < readings["minibatches"] < readings["batch"]


@pytest.mark.parametrize("group_by_length", [False, True])
def test_every_sample_is_in_exactly_one_optimizer_step(group_by_length: bool) -> None:
    lengths = [int(x) for x in torch.randint(20, 400, (113,), generator=torch.Generator().manual_seed(1))]
    chunks = optimizer_step_chunks(lengths, 4, torch.Generator().manual_seed(0), group_by_length)
    assert sorted(i for chunk in chunks for i in chunk.tolist()) == list(range(113))
    assert [len(c) for c in chunks].count(4) >= 28 and all(1 <= len(c) <= 4 for c in chunks)


def test_grouping_by_length_cuts_padding_and_keeps_steps_shuffled() -> None:
    lengths = [int(x) for x in torch.randint(100, 260, (112,), generator=torch.Generator().manual_seed(1))]

    def padding(chunks: list[torch.Tensor]) -> float:
        padded = sum(len(c) * max(lengths[i] for i in c.tolist()) for c in chunks)
        return 1 - sum(lengths) / padded

    uniform = optimizer_step_chunks(lengths, 4, torch.Generator().manual_seed(0), False)
    grouped = optimizer_step_chunks(lengths, 4, torch.Generator().manual_seed(0), True)
    assert padding(grouped) < 0.05 < 0.1 < padding(uniform)
    firsts = [max(lengths[i] for i in c.tolist()) for c in grouped]
    assert firsts != sorted(firsts) and firsts != sorted(firsts, reverse=True)  # the steps are not length-ordered


def test_grouped_step_trains(model_dir: Path) -> None:
    trainer = _trainer(model_dir, group_by_length=True, target_kl=None, max_kl=None)
    before = _trainable(trainer.policy)
    metrics = trainer.step(*_batch(trainer, 12))
    assert metrics["update/accepted"] == 1.0 and metrics["update/epochs_completed"] == 3.0
    assert any(not torch.equal(before[n], p) for n, p in _trainable(trainer.policy).items())


@pytest.mark.parametrize("tempered", [False, True])
def test_statistics_kept_from_sampling_give_the_update_a_pass_gives(model_dir: Path, tempered: bool) -> None:
    """`reuse_sampling_pass`: the log-probs and values kept from sampling are the policy's, so the update equals the
    one that recomputes them with a no-grad pass (same weights after, same losses) up to float noise."""
    kept = _trainer(model_dir, tempered_logprobs=tempered)
    recomputed = _trainer(model_dir, tempered_logprobs=tempered, reuse_sampling_pass=False)
    batch = _batch(kept)
    recomputed_batch = _batch(recomputed)  # the same stream: the same samples
    assert all(torch.equal(a, b) for a, b in zip(batch[1], recomputed_batch[1], strict=True))
    with_kept, with_pass = kept.step(*batch), recomputed.step(*batch)
    assert with_kept["ppo/old_stats_from_sampling"] == 1.0 and with_pass["ppo/old_stats_from_sampling"] == 0.0
    for name in ("ppo/loss/total", "ppo/val/vpred", "ppo/returns/mean", "objective/kl"):
        assert with_kept[name] == pytest.approx(with_pass[name], rel=1e-4, abs=1e-6), name
    for name, value in _trainable(recomputed.policy).items():
        torch.testing.assert_close(_trainable(kept.policy)[name], value, rtol=1e-4, atol=1e-6, msg=name)


def test_only_what_this_policy_sampled_is_kept(model_dir: Path) -> None:
    """Samples the trainer did not sample (replayed ones, other responses) get the pass; so does everything once
    the weights have moved since sampling, and everything sampled from a bf16 copy."""
    trainer = _trainer(model_dir, ppo_epochs=1)
    queries, responses, scores = _batch(trainer, 8)
    other = [torch.flip(r, dims=[0]) if r.numel() > 1 else torch.cat([r, r]) for r in responses[:2]]
    metrics = trainer.step(queries + queries[:2], responses + other, scores + scores[:2])
    assert metrics["ppo/old_stats_from_sampling"] == pytest.approx(8 / 10)
    stale = _batch(trainer, 8)
    trainer.step(*_batch(trainer, 8))  # moves the weights after `stale` was sampled
    assert trainer.step(*stale)["ppo/old_stats_from_sampling"] == 0.0
    trainer.sampling_dtype = torch.bfloat16
    assert not trainer.samples_exactly()
    assert trainer.step(*_batch(trainer, 8))["ppo/old_stats_from_sampling"] == 0.0


def test_the_reference_pass_is_skipped_only_while_the_adapter_adds_nothing(model_dir: Path) -> None:
    """A fresh LoRA adapter (every lora_B zero) computes exactly what the reference computes, so its log-probs are
    the reference's; once an update has moved it, the reference pass runs and reads a KL above zero."""
    trainer = _trainer(model_dir, ppo_epochs=1)
    policy = trainer.policy
    queries, responses, scores = _batch(trainer)
    assert policy.adapter_is_identity()
    mb = pack(queries, responses, trainer.tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        logits, _ = policy(mb.input_ids, mb.attention_mask, mb.position_ids, mb.logits_to_keep)
        reference = policy.reference_logits(mb.input_ids, mb.attention_mask, mb.position_ids, mb.logits_to_keep)
    assert torch.equal(logits, reference)
    first = trainer.step(queries, responses, scores)
    assert first["ppo/reference_is_policy"] == 1.0 and first["objective/kl"] == 0.0
    assert not policy.adapter_is_identity()
    second = trainer.step(*_batch(trainer))
    assert second["ppo/reference_is_policy"] == 0.0 and second["time/update/reference"] > 0.0
    assert second["objective/kl"] != 0.0
