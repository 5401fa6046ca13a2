"""Episode metrics shared by training logs and the evaluation report."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from environment.rewards import is_role_confused, words
from training.rollout import EpisodeRecord


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def distinct_n(messages: Sequence[str], n: int) -> float:
    """Distinct n-grams / all n-grams over the messages (Li et al., 2016)."""
    grams = [tuple(tokens[i:i + n]) for m in messages for tokens in [[w.lower() for w in words(m)]]
             for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def episode_metrics(records: Sequence[EpisodeRecord]) -> dict[str, float]:
    """Environment metrics over finished episodes (names as logged under ``env/``)."""
    rewards = [r.info["episode_reward"] for r in records]
    mean_reward = _mean(rewards)
    std = math.sqrt(_mean([(x - mean_reward) ** 2 for x in rewards])) if rewards else float("nan")
    user_messages = [m for r in records for m in r.user_messages]
    metrics = {
        "env/reward_mean": mean_reward,
        "env/reward_std": std,
        "env/verifier_score": _mean([r.info["verifier_score"] for r in records]),
        "env/hallucination_rate": _mean([float(r.hallucinated) for r in records]),
        "env/hallucinations_per_episode": _mean([float(len(r.info["hallucinations"])) for r in records]),
        "env/success_rate": _mean([float(r.info["success"]) for r in records]),
        "env/episode_length": _mean([float(len(r.responses)) for r in records]),
        "env/truncation_rate": _mean([float(r.truncated) for r in records]),
        "env/role_confusion_rate": _mean([float(is_role_confused(m)) for m in user_messages]),
        "env/state_completeness": _mean([float(c) for r in records for c in r.state_complete]),
        "env/distinct_1": distinct_n(user_messages, 1),
        "env/distinct_2": distinct_n(user_messages, 2),
    }
    for name in sorted({name for r in records for c in r.reward_components for name in c}):  # what the env reports
        metrics[f"env/reward/{name}"] = _mean([c[name] for r in records for c in r.reward_components if name in c])
    return metrics


def hallucination_kind_counts(records: Sequence[EpisodeRecord]) -> dict[str, int]:
    return dict(Counter(kind for r in records for kind, _ in r.info["hallucinations"]))


def render_conversation(record: EpisodeRecord) -> str:
    """A finished conversation as readable text: objective, outcome, the turns, and every exposed hallucination."""
    info = record.info
    outcome = "success" if info.get("success") else "no verified booking"
    lines = [f"objective: {record.objective.text}",
             f"outcome: {outcome} | reward {info.get('episode_reward', float('nan')):.3f} | "
             f"verifier {info.get('verifier_score', float('nan')):.2f}"]
    lines += [f"  {message.role}: {message.text}" for message in record.transcript]
    lines += [f"  !! HALLUCINATION EXPOSED ({kind}): {reason}" for kind, reason in info.get("hallucinations", [])]
    return "\n".join(lines)


def sample_conversations(records: Sequence[EpisodeRecord], count: int) -> list[str]:
    """``count`` rendered conversations, those that exposed a hallucination first."""
    ordered = sorted(records, key=lambda record: not record.hallucinated)  # stable: rollout order otherwise
    return [render_conversation(record) for record in ordered[:count]]
