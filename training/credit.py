"""Turn-level credit assignment: each user turn is one PPO sample with a scalar score.

The environment decomposes an episode's return into per-turn rewards r_t and a terminal reward R_T paid on the
last turn (``environment/rewards.py``: ``sum_t r_t + R_T`` is the episode reward, each term counted once). For user
turns t = 0..T-1 the score of turn t is its discounted return:

    score_t = sum_{k=t}^{T-1} turn_gamma^(k-t) * r_k  +  turn_gamma^(T-1-t) * R_T

so the last turn gets its own reward plus the terminal reward, and earlier turns get the outcome discounted by how
far they are from the end. With ``turn_gamma = 1`` every score_0 equals the episode reward.

Training may add a shaping bonus to R_T (the fuzzing novelty bonus, ``training.novelty``): `episode_samples` takes it
as an explicit argument, so the return PPO learns from is the environment's plus what the caller passed and logged.
"""

from __future__ import annotations

from training.buffers import TurnSample
from training.rollout import EpisodeRecord


def turn_scores(step_rewards: list[float], terminal_reward: float, turn_gamma: float) -> list[float]:
    """Discounted per-turn scores (see the module docstring)."""
    scores = [0.0] * len(step_rewards)
    running = terminal_reward
    for t in reversed(range(len(step_rewards))):
        running = step_rewards[t] + (running if t == len(step_rewards) - 1 else turn_gamma * running)
        scores[t] = running
    return scores


def episode_samples(record: EpisodeRecord, turn_gamma: float, bonus: float = 0.0) -> list[TurnSample]:
    """One PPO sample per user turn of a finished episode, scored by `turn_scores` with terminal reward
    ``record.outcome.terminal_reward + bonus``."""
    scores = turn_scores(record.step_rewards, record.outcome.terminal_reward + bonus, turn_gamma)
    return [TurnSample(query.tolist(), response.tolist(), float(score))
            for query, response, score in zip(record.queries, record.responses, scores, strict=True)]
