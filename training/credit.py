"""Turn-level credit assignment: each user turn is one PPO sample with a scalar score.

The environment decomposes an episode's return into per-turn rewards r_t and a terminal reward R_T paid on the
last turn (``environment/rewards.py``: ``sum_t r_t + R_T`` is the episode reward, each term counted once). For user
turns t = 0..T-1 the score of turn t is its discounted return:

    score_t = sum_{k=t}^{T-1} turn_gamma^(k-t) * r_k  +  turn_gamma^(T-1-t) * R_T

so the last turn gets its own reward plus the terminal reward, and earlier turns get the outcome discounted by how
far they are from the end. With ``turn_gamma = 1`` every score_0 equals the episode reward.
"""

from __future__ import annotations


def turn_scores(step_rewards: list[float], terminal_reward: float, turn_gamma: float) -> list[float]:
    """Discounted per-turn scores (see the module docstring)."""
    scores = [0.0] * len(step_rewards)
    running = terminal_reward
    for t in reversed(range(len(step_rewards))):
        running = step_rewards[t] + (running if t == len(step_rewards) - 1 else turn_gamma * running)
        scores[t] = running
    return scores
