"""End-to-end tests of PolicyWithValueHead and PPOTrainer on tiny offline GPT-2 and Llama models (CPU)."""

from __future__ import annotations

import collections
import logging
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from agents.auto_user.generation import stop_token_ids
from agents.auto_user.tiny_models import build_tiny_model
from training.ppo import PPO_METRICS, TIMING_METRICS, ModelConfig, PolicyWithValueHead, PPOConfig, PPOTrainer
from training.ppo.batching import pack
from training.ppo.core import logprobs_from_logits

PROMPTS = ["Book a flight to London", "Hello", "Cancel my trip please", "What time is it"]


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    # Tiny models gain nothing from intra-op threads, and on a shared 2-core machine OpenMP spin-waiting under
    # oversubscription slows these tests down by >10x. One thread also makes the seeded runs reproducible.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_models")
    return {arch: build_tiny_model(root / arch, arch, seed=0) for arch in ("gpt2", "llama")}


def _model_config(path: Path, **overrides: object) -> ModelConfig:
    kwargs: dict = {"base_model": str(path), "max_query_length": 16, "max_response_length": 6, "lora_r": 8}
    kwargs.update(overrides)
    return ModelConfig(**kwargs)


def _trainable(trainer: PPOTrainer) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in trainer.policy.trainable_named_parameters()}


def _rollout(trainer: PPOTrainer, n: int = 8) -> tuple[list[torch.Tensor], list[torch.Tensor], list[float]]:
    queries, responses, _ = trainer.generate((PROMPTS * n)[:n])
    scores = [float(i % 3) - 1.0 for i in range(n)]
    return queries, responses, scores


@pytest.mark.parametrize(
    ("arch", "use_lora", "use_quantization"),
    [("gpt2", True, False), ("gpt2", False, False), ("llama", True, False), ("llama", False, False),
     ("gpt2", True, True), ("llama", True, True)],
)
def test_step_returns_finite_expected_metrics(
    model_dirs: dict[str, Path], arch: str, use_lora: bool, use_quantization: bool
) -> None:
    mc = _model_config(model_dirs[arch], use_lora=use_lora, use_quantization=use_quantization)
    trainer = PPOTrainer(mc, PPOConfig(mini_batch_size=4, gradient_accumulation_steps=2,
                                       learning_rate=1e-3, ppo_epochs=2))
    if use_quantization:
        import bitsandbytes as bnb

        assert any(isinstance(m, bnb.nn.Linear4bit) for m in trainer.policy.modules())
    before = _trainable(trainer)
    for _ in range(2):
        metrics = trainer.step(*_rollout(trainer))
    assert set(metrics) == set(PPO_METRICS)
    assert all(math.isfinite(metrics[name]) for name in PPO_METRICS), metrics
    assert metrics["update/accepted"] == 1.0
    assert metrics["update/rolled_back_kl"] == metrics["update/rolled_back_nonfinite"] == 0.0
    after = _trainable(trainer)
    assert any(not torch.equal(before[n], after[n]) for n in before), "no trainable parameter changed"
    if use_lora:
        # Only adapter weights and the value head are trainable.
        assert all("lora_" in n or n.startswith("value_head") for n in after)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_ppo_learns_toy_token_reward(model_dirs: dict[str, Path], arch: str) -> None:
    mc = _model_config(model_dirs[arch], use_lora=False, temperature=1.0, top_p=1.0, top_k=0, stop_at_newline=False)
    pc = PPOConfig(mini_batch_size=8, learning_rate=3e-3, adaptive_kl=False, init_kl_coef=0.01,
                   target_kl=None, max_kl=None, seed=0)
    trainer = PPOTrainer(mc, pc)
    prompts = PROMPTS * 4
    _, responses, _ = trainer.generate(prompts)
    eos = trainer.tokenizer.eos_token_id
    counts = collections.Counter(t for r in responses for t in r.tolist() if t != eos)
    target = counts.most_common(1)[0][0]  # a token the random policy does sample, so there is signal to follow

    def reward(r: torch.Tensor) -> float:
        return float((r == target).float().mean())

    start = sum(reward(r) for r in responses) / len(responses)
    history = []
    for _ in range(80):
        queries, responses, _ = trainer.generate(prompts)
        scores = [reward(r) for r in responses]
        history.append(sum(scores) / len(scores))
        if history[-1] > 0.8:
            break
        trainer.step(queries, responses, scores)
    assert start < 0.2
    assert history[-1] > 0.8, f"reward did not rise above 0.8: {history[::5]}"


def test_kl_guard_rejects_absurd_update_and_restores_exactly(model_dirs: dict[str, Path]) -> None:
    # Full fine-tuning: the tiny models' output scale is bounded by the (tied) embeddings, so only updates that can
    # touch them move the policy far enough to trip max_kl.
    mc = _model_config(model_dirs["gpt2"], use_lora=False)
    pc = PPOConfig(mini_batch_size=4, learning_rate=10.0, target_kl=0.1, max_kl=1.0, ppo_epochs=4)
    trainer = PPOTrainer(mc, pc)
    queries, responses, scores = _rollout(trainer)
    # One sane step first so the optimizer has moment buffers to restore.
    trainer.optimizer.param_groups[0]["lr"] = 1e-4
    assert trainer.step(queries, responses, scores)["update/accepted"] == 1.0
    trainer.optimizer.param_groups[0]["lr"] = 10.0
    before = _trainable(trainer)
    opt_before = {k: v.clone() for k, v in trainer.optimizer.state_dict()["state"][0].items()}
    metrics = trainer.step(queries, responses, scores)
    assert metrics["update/accepted"] == 0.0
    assert metrics["update/rolled_back_kl"] == 1.0 and metrics["update/rolled_back_nonfinite"] == 0.0
    assert metrics["update/early_stop_epoch"] < pc.ppo_epochs
    assert metrics["update/epochs_completed"] == 0.0
    assert metrics["update/approxkl"] > pc.max_kl
    after = _trainable(trainer)
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert all(torch.equal(opt_before[k], v) for k, v in trainer.optimizer.state_dict()["state"][0].items())


def test_kl_guard_early_stops_before_max_kl(model_dirs: dict[str, Path]) -> None:
    mc = _model_config(model_dirs["gpt2"], use_lora=False)
    pc = PPOConfig(mini_batch_size=4, learning_rate=3e-3, target_kl=1e-4, max_kl=None, ppo_epochs=4)
    trainer = PPOTrainer(mc, pc)
    metrics = trainer.step(*_rollout(trainer))
    assert metrics["update/accepted"] == 1.0
    assert metrics["update/early_stop_epoch"] == 0.0
    assert metrics["update/epochs_completed"] == 1.0


def test_nonfinite_loss_is_never_applied(model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import training.ppo.trainer as trainer_module

    trainer = PPOTrainer(_model_config(model_dirs["llama"], use_lora=True), PPOConfig(learning_rate=1e-2))
    rollout = _rollout(trainer)
    before = _trainable(trainer)
    real_loss = trainer_module.clipped_policy_loss

    def nan_loss(*args: object, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        loss, clipfrac, kl = real_loss(*args, **kwargs)
        return loss * float("nan"), clipfrac, kl

    monkeypatch.setattr(trainer_module, "clipped_policy_loss", nan_loss)
    metrics = trainer.step(*rollout)
    assert metrics["update/accepted"] == 0.0
    assert metrics["update/rolled_back_nonfinite"] == 1.0 and metrics["update/rolled_back_kl"] == 0.0
    assert math.isnan(metrics["ppo/loss/total"])  # no optimizer step ran
    after = _trainable(trainer)
    assert all(torch.equal(before[n], after[n]) for n in before)


@pytest.mark.parametrize(("arch", "use_lora"), [("gpt2", True), ("llama", False)])
def test_save_load_round_trip(model_dirs: dict[str, Path], tmp_path: Path, arch: str, use_lora: bool) -> None:
    trainer = PPOTrainer(_model_config(model_dirs[arch], use_lora=use_lora),
                         PPOConfig(learning_rate=1e-2, max_kl=None, target_kl=None))
    queries, responses, scores = _rollout(trainer)
    trainer.step(queries, responses, scores)  # make the adapter / weights differ from the base
    trainer.save_pretrained(str(tmp_path / "ckpt"))
    assert (tmp_path / "ckpt" / "value_head.safetensors").exists()
    loaded = PolicyWithValueHead.from_pretrained(tmp_path / "ckpt")
    batch = pack(queries, responses, trainer.tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        logits_a, values_a = trainer.policy(batch.input_ids, batch.attention_mask, batch.position_ids)
        logits_b, values_b = loaded(batch.input_ids, batch.attention_mask, batch.position_ids)
    assert torch.equal(logits_a, logits_b)
    assert torch.equal(values_a, values_b)
    assert loaded.is_peft == use_lora
    expected_trainable = {n for n, _ in trainer.policy.trainable_named_parameters()}
    assert {n for n, _ in loaded.trainable_named_parameters()} == expected_trainable


@pytest.mark.parametrize(("arch", "use_lora"), [("gpt2", True), ("llama", True), ("gpt2", False)])
def test_reference_logprobs_equal_base_model(model_dirs: dict[str, Path], arch: str, use_lora: bool) -> None:
    trainer = PPOTrainer(_model_config(model_dirs[arch], use_lora=use_lora),
                         PPOConfig(learning_rate=1e-2, max_kl=None, target_kl=None))
    queries, responses, scores = _rollout(trainer)
    trainer.step(queries, responses, scores)
    batch = pack(queries, responses, trainer.tokenizer.pad_token_id, "cpu")
    ref = trainer.policy.reference_logprobs(batch.input_ids, batch.attention_mask, batch.position_ids)
    base = AutoModelForCausalLM.from_pretrained(model_dirs[arch]).eval()
    with torch.no_grad():
        logits = base(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                      position_ids=batch.position_ids).logits
        policy_logits, _ = trainer.policy(batch.input_ids, batch.attention_mask, batch.position_ids)
    expected = logprobs_from_logits(logits[:, :-1], batch.input_ids[:, 1:])
    mask = batch.attention_mask[:, 1:].bool()
    torch.testing.assert_close(ref[mask], expected[mask], atol=1e-5, rtol=1e-5)
    trained = logprobs_from_logits(policy_logits[:, :-1], batch.input_ids[:, 1:])
    assert not torch.allclose(trained[mask], expected[mask], atol=1e-4), "policy should have moved away from base"


@pytest.mark.parametrize(("arch", "use_lora"), [("gpt2", True), ("gpt2", False)])
def test_reference_generation_samples_the_base_model(model_dirs: dict[str, Path], arch: str, use_lora: bool) -> None:
    """``generate(reference=True)`` (the end-of-run base column) samples the untrained base, not the policy."""
    config = _model_config(model_dirs[arch], use_lora=use_lora, temperature=1.0, top_k=0, top_p=1.0)
    trainer = PPOTrainer(config, PPOConfig())
    with torch.no_grad():  # move the trained weights far from the base
        for _, parameter in trainer.policy.trainable_named_parameters():
            parameter.add_(torch.randn_like(parameter))
    fresh = PPOTrainer(config, PPOConfig())  # same seed, untouched weights (a zero LoRA B is the base itself)
    _, base_responses, _ = fresh.generate(PROMPTS * 2)
    rng_state = trainer._sample_rng.get_state()
    _, reference_responses, _ = trainer.generate(PROMPTS * 2, reference=True)
    assert all(torch.equal(a, b) for a, b in zip(base_responses, reference_responses, strict=True))
    trainer._sample_rng.set_state(rng_state)
    _, trained_responses, _ = trainer.generate(PROMPTS * 2)
    assert not all(torch.equal(a, b) for a, b in zip(base_responses, trained_responses, strict=True))


def test_reseeded_sampling_is_the_same_whatever_the_training_seed(model_dirs: dict[str, Path]) -> None:
    """The end-of-run comparison's base column does not depend on the run's seed or on what was sampled before."""
    config = _model_config(model_dirs["gpt2"], temperature=1.0, top_k=0, top_p=1.0)
    first, second = PPOTrainer(config, PPOConfig(seed=0)), PPOTrainer(config, PPOConfig(seed=7))
    first.generate(PROMPTS)  # advance one stream only
    samples = []
    for trainer in (first, second):
        trainer.reseed_sampling(20_000)
        samples.append(trainer.generate(PROMPTS * 2, reference=True)[1])
    assert all(torch.equal(a, b) for a, b in zip(*samples, strict=True))
    second.reseed_sampling(1)
    other = second.generate(PROMPTS * 2, reference=True)[1]
    assert not all(torch.equal(a, b) for a, b in zip(samples[0], other, strict=True))


def test_generate_truncates_left_and_stops_at_newline(model_dirs: dict[str, Path]) -> None:
    mc = _model_config(model_dirs["gpt2"], max_query_length=8, max_response_length=20, temperature=1.0,
                       top_k=0, top_p=1.0)
    trainer = PPOTrainer(mc, PPOConfig())
    tok = trainer.tokenizer
    newline = tok("\n", add_special_tokens=False)["input_ids"]
    assert len(newline) == 1 and newline[0] in stop_token_ids(tok, stop_at_newline=True)
    newline_id = newline[0]
    # Make newline likely at every step: a constant final hidden state e_0 and a large e_0 weight for "\n".
    base = trainer.policy.pretrained_model.base_model.model
    with torch.no_grad():
        base.transformer.ln_f.weight.zero_()
        base.transformer.ln_f.bias.zero_()
        base.transformer.ln_f.bias[0] = 1.0
        base.lm_head.weight[newline_id, 0] = math.log(0.25 / 0.75 * (len(tok) - 1))  # p(newline) ~ 0.25

    long_prompt = "Hello, I would like to book a flight from New York to London next Monday."
    full = tok(long_prompt, add_special_tokens=False)["input_ids"]
    assert len(full) > 8
    queries, responses, texts = trainer.generate([long_prompt, "Hi"] * 8)
    assert queries[0].tolist() == full[-8:]
    assert queries[1].tolist() == tok("Hi", add_special_tokens=False)["input_ids"]
    stops = set(stop_token_ids(tok, stop_at_newline=True))
    ended = 0
    for r, text in zip(responses, texts, strict=True):
        tokens = r.tolist()
        assert 1 <= len(tokens) <= 20
        assert not stops.intersection(tokens[:-1]), "a stop token must end the response"
        if tokens[-1] in stops:
            ended += 1
        else:
            assert len(tokens) == 20
        assert "\n" not in text
    assert ended >= 8
    # Same seed, same samples.
    again = PPOTrainer(mc, PPOConfig())
    again.policy.load_state_dict(trainer.policy.state_dict())
    _, responses_b, _ = again.generate([long_prompt, "Hi"] * 8)
    assert all(torch.equal(a, b) for a, b in zip(responses, responses_b, strict=True))


def test_trainer_state_resume_is_exact(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    mc = _model_config(model_dirs["llama"], use_lora=True)
    pc = PPOConfig(mini_batch_size=4, learning_rate=1e-2, max_kl=None, target_kl=None)
    trainer = PPOTrainer(mc, pc)
    batch1, batch2 = _rollout(trainer), _rollout(trainer)
    trainer.step(*batch1)
    trainer.save_pretrained(str(tmp_path / "ckpt"))
    state = trainer.state_dict()
    torch.save(state, tmp_path / "trainer.pt")
    expected = trainer.step(*batch2)

    resumed = PPOTrainer(mc, pc, policy=PolicyWithValueHead.from_pretrained(tmp_path / "ckpt"))
    resumed.load_state_dict(torch.load(tmp_path / "trainer.pt", weights_only=False))
    assert resumed.step_count == 1 and resumed.kl_ctl.value == state["kl_coef"]
    got = resumed.step(*batch2)
    for name in ("ppo/loss/total", "ppo/policy/approxkl", "objective/kl_coef"):
        assert got[name] == pytest.approx(expected[name], rel=1e-5, abs=1e-7)
    a, b = _trainable(trainer), _trainable(resumed)
    assert all(torch.allclose(a[n], b[n], atol=1e-6) for n in a)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_padding_does_not_change_logprobs_or_values(model_dirs: dict[str, Path], arch: str) -> None:
    trainer = PPOTrainer(_model_config(model_dirs[arch], use_lora=True), PPOConfig())
    short_q, long_q = torch.tensor([5, 6]), torch.arange(10, 40)
    short_r, long_r = torch.tensor([7, 8, 9]), torch.arange(50, 60)
    alone_logp, alone_values, _ = trainer.batched_forward_pass([short_q], [short_r])
    batched_logp, batched_values, mask = trainer.batched_forward_pass([short_q, long_q], [short_r, long_r])
    assert mask[0].tolist() == [1] * 3 + [0] * 7
    torch.testing.assert_close(batched_logp[0, :3], alone_logp[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched_values[0, :3], alone_values[0], atol=1e-5, rtol=1e-5)


def test_scoring_pass_returns_rows_in_the_callers_order(model_dirs: dict[str, Path]) -> None:
    """The no-grad passes batch samples by length; each row must still be its own sample's."""
    trainer = PPOTrainer(_model_config(model_dirs["llama"], use_lora=True), PPOConfig(mini_batch_size=2))
    queries = [torch.arange(10, 40), torch.tensor([5, 6]), torch.arange(3, 20), torch.tensor([9])]
    responses = [torch.tensor([7, 8, 9]), torch.arange(50, 60), torch.tensor([4]), torch.arange(20, 25)]
    logp, values, mask = trainer.batched_forward_pass(queries, responses)
    for i, (query, response) in enumerate(zip(queries, responses, strict=True)):
        alone_logp, alone_values, _ = trainer.batched_forward_pass([query], [response])
        n = int(response.numel())
        assert mask[i].sum() == n
        torch.testing.assert_close(logp[i, :n], alone_logp[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(values[i, :n], alone_values[0], atol=1e-5, rtol=1e-5)


def test_tempered_logprobs_score_the_sampling_distribution(model_dirs: dict[str, Path]) -> None:
    """With ``tempered_logprobs`` every pass scores responses under logits / temperature (the sampled distribution)."""
    config = _model_config(model_dirs["gpt2"], temperature=0.5)
    plain, tempered = PPOTrainer(config, PPOConfig()), PPOTrainer(config, PPOConfig(tempered_logprobs=True))
    queries, responses, _ = _rollout(plain, n=4)
    batch = pack(queries, responses, plain.tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        logits, _ = plain.policy(batch.input_ids, batch.attention_mask, batch.position_ids)
    response_logits = logits[:, batch.query_width - 1 : -1]
    mask = batch.response_mask.bool()
    for trainer, divisor in ((plain, 1.0), (tempered, 0.5)):
        for reference in (False, True):  # a zero LoRA B: policy and reference are the same network here
            logp, _, _ = trainer.batched_forward_pass(queries, responses, reference=reference)
            expected = logprobs_from_logits(response_logits / divisor, batch.response_tokens)
            torch.testing.assert_close(logp[mask], expected[mask], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("arch", "use_lora"), [("gpt2", True), ("llama", True), ("gpt2", False)])
def test_sampling_copy_computes_the_policy_and_the_reference(
    model_dirs: dict[str, Path], arch: str, use_lora: bool
) -> None:
    """The merged copy sampling runs from equals the policy (adapter folded in) or the base, and leaves both intact."""
    trainer = PPOTrainer(_model_config(model_dirs[arch], use_lora=use_lora), PPOConfig())
    with torch.no_grad():
        for _, parameter in trainer.policy.trainable_named_parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    before = _trainable(trainer)
    batch = pack(*_rollout(trainer, n=4)[:2], trainer.tokenizer.pad_token_id, "cpu")
    inputs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
              "position_ids": batch.position_ids}
    with torch.no_grad():
        policy_logits, _ = trainer.policy(**inputs)
        reference_logits = trainer.policy.reference_logits(**inputs)
        merged = trainer.policy.sampling_copy(torch.float32)(**inputs).logits
        base = trainer.policy.sampling_copy(torch.float32, reference=True)(**inputs).logits
        merged_bf16 = trainer.policy.sampling_copy(torch.bfloat16)(**inputs).logits.float()
    real = batch.attention_mask.bool()
    torch.testing.assert_close(merged[real], policy_logits[real], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(base[real], reference_logits[real], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(policy_logits[real], reference_logits[real], atol=1e-3)
    assert (merged_bf16[real] - policy_logits[real]).abs().mean() < 0.05 * policy_logits[real].abs().mean()
    after = _trainable(trainer)
    assert all(torch.equal(before[n], after[n]) for n in before)  # merging a copy never touches the policy
    if use_lora:
        assert any("lora_" in n for n in after)


def _merged_matches_policy(trainer: PPOTrainer, merged: torch.nn.Module, queries, responses) -> None:
    batch = pack(queries, responses, trainer.tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        expected, _ = trainer.policy(batch.input_ids, batch.attention_mask, batch.position_ids)
        got = merged(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                     position_ids=batch.position_ids).logits
    real = batch.attention_mask.bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-4, rtol=1e-4)


def test_merged_sampling_follows_every_update(model_dirs: dict[str, Path]) -> None:
    """Sampling from the merged copy: a step, a rolled-back step, a weight written by hand or a new sampling dtype
    makes the next sample re-merge, and the copy computes what the policy then computes."""
    config = _model_config(model_dirs["gpt2"], temperature=1.0, top_k=0, top_p=1.0)
    trainer = PPOTrainer(config, PPOConfig(learning_rate=1e-2, ppo_epochs=1, max_kl=None, target_kl=None))
    trainer.sampling_dtype = torch.float32
    queries, responses, scores = _rollout(trainer)
    copies = [trainer._sampling_copies[False][1]]
    trainer.generate(PROMPTS)
    assert trainer._sampling_copies[False][1] is copies[0]  # no update: the copy is reused

    def resampled() -> torch.nn.Module:
        trainer.generate(PROMPTS)
        copy = trainer._sampling_copies[False][1]
        assert all(copy is not earlier for earlier in copies)
        copies.append(copy)
        return copy

    trainer.step(queries, responses, scores)
    _merged_matches_policy(trainer, resampled(), queries, responses)
    trainer.config.max_kl = trainer.config.target_kl = 1e-12  # the next update is rolled back
    before = _trainable(trainer)
    assert trainer.step(queries, responses, scores)["update/accepted"] == 0.0
    assert all(torch.equal(before[n], p) for n, p in _trainable(trainer).items())
    _merged_matches_policy(trainer, resampled(), queries, responses)
    with torch.no_grad():  # a write outside `step` (e.g. a user loading weights) is seen too
        next(p for n, p in trainer.policy.trainable_named_parameters() if "lora_B" in n).add_(1.0)
    _merged_matches_policy(trainer, resampled(), queries, responses)
    trainer.sampling_dtype = torch.bfloat16
    assert next(resampled().parameters()).dtype == torch.bfloat16


def test_step_times_each_phase(model_dirs: dict[str, Path]) -> None:
    # A guard pass after the last epoch ("batch"), statistics the trainer did not sample, and an adapter that is no
    # longer a no-op (the second update): every phase runs.
    pc = PPOConfig(mini_batch_size=4, learning_rate=1e-3, ppo_epochs=2, target_kl=None, max_kl=None,
                   kl_guard_measure="batch", reuse_sampling_pass=False)
    trainer = PPOTrainer(_model_config(model_dirs["gpt2"], use_lora=True), pc)
    first = trainer.step(*_rollout(trainer))
    assert first["ppo/reference_is_policy"] == 1.0
    metrics = trainer.step(*_rollout(trainer))
    assert metrics["ppo/reference_is_policy"] == 0.0
    phases = [name for name in TIMING_METRICS if name != "time/update/total"]
    assert all(metrics[name] > 0 for name in TIMING_METRICS), {n: metrics[n] for n in TIMING_METRICS}
    # The phases are disjoint slices of the step, so they add up to no more than its total.
    assert sum(metrics[name] for name in phases) <= metrics["time/update/total"]


def test_plots_read_only_metrics_the_trainer_returns() -> None:
    from training import plot_metrics

    ppo_prefixes = ("ppo/", "objective/", "update/", "tokens/", "time/update/")
    plotted = [name for _, series, _ in plot_metrics.PANELS for name, _ in series] + [plot_metrics.UPDATE_ACCEPTED]
    assert [name for name in plotted if name.startswith(ppo_prefixes) and name not in PPO_METRICS] == []
    assert {"ppo/loss/policy", "ppo/loss/value", "ppo/loss/total", "objective/kl"} <= set(plotted)


def test_importing_the_training_loop_is_silent_about_bitsandbytes_cpu_kernels() -> None:
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", "import training.loop"], capture_output=True, text=True,
                            timeout=180, cwd=repo)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "gemm_4bit" not in result.stderr, result.stderr[-2000:]


def test_loading_4bit_on_cpu_says_once_what_it_means(model_dirs: dict[str, Path], caplog: pytest.LogCaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import agents.auto_user.bitsandbytes_notice as notice
    from agents.auto_user.models import load_causal_lm

    monkeypatch.setattr(notice, "_noted", False)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            load_causal_lm(str(model_dirs["gpt2"]), use_quantization=True)
        load_causal_lm(str(model_dirs["gpt2"]))
    from bitsandbytes.backends.cpu import ops

    assert not any("gemm_4bit" in r.getMessage() for r in caplog.records)
    notes = [r.getMessage() for r in caplog.records if r.name == notice.__name__]
    if getattr(ops, "gemm_4bit_forward_kernel", None) is not None:
        assert notes == []  # bitsandbytes has its fast kernel here: nothing to say
    else:
        assert len(notes) == 1 and notes[0].startswith("4-bit NF4 on CPU: bitsandbytes has no fast CPU kernel here")
        assert notes[0].endswith("expect slow 4-bit matmuls")
