"""Unit tests for the pure PPO math in training.ppo.core and the config validation."""

from __future__ import annotations

import pytest
import torch

from agents.auto_user.generation import cut_at_stop
from training.ppo import ModelConfig, PPOConfig
from training.ppo.batching import gather_response, pack
from training.ppo.core import (
    AdaptiveKLController,
    FixedKLController,
    approx_kl,
    clipped_policy_loss,
    clipped_value_loss,
    compute_gae,
    logprobs_from_logits,
    masked_mean,
    masked_var,
    masked_whiten,
    per_token_rewards,
)
from training.ppo.update_guard import GuardDecision, kl_guard


def test_compute_gae_matches_hand_computation() -> None:
    # Row 0: 3 real tokens. Row 1: 2 real tokens; the padded slot holds junk that must be ignored.
    rewards = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 5.0]])
    values = torch.tensor([[0.5, 1.0, 1.5], [0.2, 0.4, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    advantages, returns = compute_gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # delta_t = r_t + gamma * V_{t+1} - V_t ; A_t = delta_t + gamma * lam * A_{t+1}; terminal V = 0.
    # Row 0: d2 = 2 - 1.5 = 0.5; d1 = 0.9*1.5 - 1 = 0.35; A1 = 0.35 + 0.72*0.5 = 0.71; d0 = 1 + 0.9 - 0.5 = 1.4;
    #        A0 = 1.4 + 0.72*0.71 = 1.9112.
    # Row 1: d1 = 1 - 0.4 = 0.6; d0 = 0.9*0.4 - 0.2 = 0.16; A0 = 0.16 + 0.72*0.6 = 0.592.
    expected_adv = torch.tensor([[1.9112, 0.71, 0.5], [0.592, 0.6, 0.0]])
    expected_ret = torch.tensor([[2.4112, 1.71, 2.0], [0.792, 1.0, 0.0]])
    torch.testing.assert_close(advantages, expected_adv)
    torch.testing.assert_close(returns, expected_ret)


def test_compute_gae_gamma_lam_one_is_reward_to_go_minus_value() -> None:
    rewards = torch.tensor([[0.1, -0.2, 0.3, 1.0]])
    values = torch.tensor([[0.4, 0.3, 0.2, 0.1]])
    advantages, returns = compute_gae(rewards, values, torch.ones(1, 4), gamma=1.0, lam=1.0)
    reward_to_go = rewards.flip(1).cumsum(1).flip(1)
    torch.testing.assert_close(returns, reward_to_go)
    torch.testing.assert_close(advantages, reward_to_go - values)


def test_per_token_rewards_kl_penalty_and_score_on_last_token() -> None:
    scores = torch.tensor([3.0, -1.0])
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, 0.0]])
    ref_logprobs = torch.tensor([[-1.5, -2.0, -2.0], [-2.0, -1.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    rewards = per_token_rewards(scores, logprobs, ref_logprobs, mask, kl_coef=0.1)
    expected = torch.tensor([[-0.05, 0.0, 0.1 + 3.0], [-0.1, -1.0, 0.0]])
    torch.testing.assert_close(rewards, expected)


def test_masked_statistics_and_whitening() -> None:
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, 5.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    real = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    torch.testing.assert_close(masked_mean(values, mask), real.mean())
    torch.testing.assert_close(masked_var(values, mask), real.var(unbiased=True))
    white = masked_whiten(values, mask)
    assert white[0, 2] == 0.0
    torch.testing.assert_close(masked_mean(white, mask), torch.tensor(0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(masked_var(white, mask), torch.tensor(1.0), atol=1e-4, rtol=0)
    kept_mean = masked_whiten(values, mask, shift_mean=False)
    torch.testing.assert_close(masked_mean(kept_mean, mask), real.mean())


def test_kl_controllers() -> None:
    ctl = AdaptiveKLController(init_kl_coef=0.2, target=6.0, horizon=10000)
    ctl.update(current=12.0, n_steps=100)  # error clipped to +0.2 -> x1.002
    assert ctl.value == pytest.approx(0.2 * 1.002)
    ctl.update(current=3.0, n_steps=100)  # error -0.5 clipped to -0.2 -> x0.998
    assert ctl.value == pytest.approx(0.2 * 1.002 * 0.998)
    ctl.update(current=6.6, n_steps=1000)  # error +0.1 -> x1.01
    assert ctl.value == pytest.approx(0.2 * 1.002 * 0.998 * 1.01)
    fixed = FixedKLController(0.3)
    fixed.update(current=100.0, n_steps=1000)
    assert fixed.value == 0.3


def test_logprobs_from_logits_matches_log_softmax() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.randint(0, 11, (2, 5))
    expected = torch.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(logprobs_from_logits(logits, labels), expected)


def test_clipped_losses() -> None:
    mask = torch.tensor([[1, 1, 0]])
    old = torch.tensor([[-1.0, -1.0, -1.0]])
    adv = torch.tensor([[1.0, -2.0, 7.0]])
    loss, clipfrac, kl = clipped_policy_loss(old.clone(), old, adv, mask, cliprange=0.2)
    assert loss.item() == pytest.approx(0.5)  # ratio 1: -mean(adv) over real tokens
    assert clipfrac.item() == 0.0 and kl.item() == pytest.approx(0.0)
    # ratio e^1 on a positive advantage is clipped at 1.2; the negative-advantage token keeps ratio 1.
    new = torch.tensor([[0.0, -1.0, -1.0]])
    loss, clipfrac, kl = clipped_policy_loss(new, old, adv, mask, cliprange=0.2)
    assert loss.item() == pytest.approx((-1.2 + 2.0) / 2)
    assert clipfrac.item() == pytest.approx(0.5)
    assert kl.item() == pytest.approx((torch.e - 1 - 1) / 2)
    assert approx_kl(new, old, mask).item() == pytest.approx(kl.item())

    vloss, vclip = clipped_value_loss(
        torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 0.0]]), torch.tensor([[1.0, 1.0, 0.0]]), mask, 0.2
    )
    # token 0: unclipped (2-1)^2 = 1, clipped (0.2-1)^2 = 0.64 -> max 1; token 1: (0-1)^2 = 1 both.
    assert vloss.item() == pytest.approx(0.5)
    assert vclip.item() == 0.0


def test_pack_aligns_response_positions() -> None:
    queries = [torch.tensor([5, 6, 7]), torch.tensor([8])]
    responses = [torch.tensor([1, 2]), torch.tensor([3, 4, 9])]
    batch = pack(queries, responses, pad_id=0, device="cpu")
    # Queries left-padded to 3, responses right-padded to 3: every response starts at column 3.
    assert batch.input_ids.tolist() == [[5, 6, 7, 1, 2, 0], [0, 0, 8, 3, 4, 9]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert batch.position_ids[1, 2:].tolist() == [0, 1, 2, 3]
    assert batch.response_tokens.tolist() == [[1, 2, 0], [3, 4, 9]]
    assert batch.response_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    # Response token j is predicted by the logits at column Q - 1 + j: the last R + 1 columns minus the final one.
    logits = torch.arange(6.0).view(1, 6, 1).expand(2, 6, 1)
    values = torch.arange(6.0).expand(2, 6)
    resp_logits, resp_values = gather_response(logits[:, -batch.logits_to_keep :], values, batch)
    assert resp_logits[0, :, 0].tolist() == [2.0, 3.0, 4.0]
    assert resp_values[0].tolist() == [2.0, 3.0, 4.0]


def test_cut_at_stop() -> None:
    stops = torch.tensor([0, 9])
    assert cut_at_stop(torch.tensor([4, 5, 9, 6, 0]), stops).tolist() == [4, 5, 9]
    assert cut_at_stop(torch.tensor([4, 5, 6]), stops).tolist() == [4, 5, 6]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mini_batch_size": 0}, "mini_batch_size"),
        ({"lam": 1.5}, "lam"),
        ({"cliprange": 0.0}, "cliprange"),
        ({"target_kl": 0.5, "max_kl": 0.1}, "max_kl"),
        ({"learning_rate": -1.0}, "learning_rate"),
    ],
)
def test_ppo_config_validation(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        PPOConfig(**kwargs)


def test_model_config_validation() -> None:
    with pytest.raises(ValueError, match="use_quantization"):
        ModelConfig(base_model="x", use_quantization=True, use_lora=False)
    with pytest.raises(ValueError, match="bnb_4bit_compute_dtype"):
        ModelConfig(base_model="x", bnb_4bit_compute_dtype="int8")
    with pytest.raises(ValueError, match="top_p"):
        ModelConfig(base_model="x", top_p=0.0)


@pytest.mark.parametrize(
    ("approxkl", "target_kl", "max_kl", "decision"),
    [
        (0.05, 0.1, 1.0, GuardDecision.CONTINUE),
        (0.1, 0.1, 1.0, GuardDecision.CONTINUE),  # at the target: not above it
        (0.5, 0.1, 1.0, GuardDecision.STOP_EARLY),
        (1.0, 0.1, 1.0, GuardDecision.STOP_EARLY),  # at max_kl: kept
        (1.5, 0.1, 1.0, GuardDecision.ROLL_BACK),
        (float("nan"), 0.1, 1.0, GuardDecision.ROLL_BACK),
        (float("nan"), None, None, GuardDecision.CONTINUE),  # no thresholds, no guard
        (50.0, None, 1.0, GuardDecision.ROLL_BACK),
        (50.0, 0.1, None, GuardDecision.STOP_EARLY),
    ],
)
def test_kl_guard_decisions(approxkl: float, target_kl: float | None, max_kl: float | None,
                            decision: GuardDecision) -> None:
    assert kl_guard(approxkl, target_kl, max_kl) is decision
