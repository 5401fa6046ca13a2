"""Turn-level credit assignment: each user turn is one PPO sample with a scalar score.

For an episode with user turns t = 0..T-1, step rewards r_t (the environment's ``immediate_weight x immediate_t``)
and episode reward R (``verifier_weight x verifier score + immediate_weight x mean immediate``, see
``environment/rewards.py``), the score of turn t is its discounted return:

    score_t = sum_{k=t}^{T-1} turn_gamma^(k-t) * r_k  +  turn_gamma^(T-1-t) * R

so the last turn gets its own reward plus the full episode reward, and earlier turns get the episode outcome
discounted by how far they are from the end.
"""

from __future__ import annotations


def turn_scores(step_rewards: list[float], episode_reward: float, turn_gamma: float) -> list[float]:
    """Discounted per-turn scores (see the module docstring)."""
    scores = [0.0] * len(step_rewards)
    running = 0.0
    for t in reversed(range(len(step_rewards))):
        future = episode_reward if t == len(step_rewards) - 1 else turn_gamma * running
        running = step_rewards[t] + future
        scores[t] = running
    return scores
