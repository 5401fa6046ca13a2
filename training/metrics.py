"""Episode metrics shared by training logs and the evaluation report, and the run's metrics file.

``training_metrics.json`` (a list of per-epoch records, oldest first) is rewritten whole after every epoch, into a
temporary file that replaces the old one only once it is complete: a full disk or a kill midway leaves the previous
file as it was and no temporary file behind.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agents.nlu import words
from environment.rewards import is_role_confused
from training.rollout import EpisodeRecord, RolloutStats

METRICS_FILE = "training_metrics.json"


def _write_fully(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is out: a short write is legal (and is how a nearly full disk starts)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` all at once: written to a temporary file beside it, synced, then renamed.

    Raises:
        OSError: the write failed (e.g. ``ENOSPC``), with ``filename`` set; ``path`` is unchanged and the temporary
            file is removed.
    """
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644  # mkstemp's 0600 would hide it from others
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            os.fchmod(fd, mode)
            _write_fully(fd, text.encode("utf-8"))
            os.fsync(fd)  # a crash after the rename must not leave an empty file in place of the old one
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:  # os.write names no file; the caller reports this one
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


def read_metrics_history(path: Path) -> list[dict[str, Any]]:
    """The per-epoch records of ``training_metrics.json`` (empty when there is none)."""
    return json.loads(path.read_text()) if path.exists() else []


def record_epoch_metrics(path: Path, metrics: dict[str, Any]) -> None:
    """Add one epoch's record to ``training_metrics.json``, replacing records of that epoch and later (left there by
    the run a resumed run continues). Atomic: see ``write_text_atomic``."""
    history = [h for h in read_metrics_history(path) if h["epoch"] < metrics["epoch"]] + [metrics]
    write_text_atomic(path, json.dumps(history, indent=1, default=float))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def distinct_n(messages: Sequence[str], n: int) -> float:
    """Distinct n-grams / all n-grams over the messages (Li et al., 2016)."""
    grams = [tuple(tokens[i:i + n]) for m in messages for tokens in [[w.lower() for w in words(m)]]
             for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def episode_metrics(records: Sequence[EpisodeRecord]) -> dict[str, float]:
    """Environment metrics over finished episodes (names as logged under ``env/``)."""
    rewards = [r.outcome.episode_reward for r in records]
    mean_reward = _mean(rewards)
    std = math.sqrt(_mean([(x - mean_reward) ** 2 for x in rewards])) if rewards else float("nan")
    user_messages = [m for r in records for m in r.user_messages]
    metrics = {
        "env/reward_mean": mean_reward,
        "env/reward_std": std,
        "env/verifier_score": _mean([r.outcome.verifier_score for r in records]),
        "env/hallucination_rate": _mean([float(r.hallucinated) for r in records]),
        "env/hallucinations_per_episode": _mean([float(len(r.outcome.hallucinations)) for r in records]),
        "env/success_rate": _mean([float(r.outcome.success) for r in records]),
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


def trained_reward_metrics(records: Sequence[EpisodeRecord], bonuses: Sequence[float]) -> dict[str, float]:
    """The return PPO learned from, per episode: the environment's episode reward plus the shaping bonus training
    added (``training.novelty``; 0 outside fuzzing), as ``train/reward_mean``, and the bonus alone."""
    return {"train/reward_mean": _mean([r.outcome.episode_reward + b for r, b in zip(records, bonuses, strict=True)]),
            "train/shaping_bonus_mean": _mean(list(bonuses))}


def hallucination_kind_counts(records: Sequence[EpisodeRecord]) -> dict[str, int]:
    return dict(Counter(kind for r in records for kind, _ in r.outcome.hallucinations))


TOOL_LINE, REWARD_LINE = "  [tool] ", "  [reward] "  # render_conversation's detail lines (dashboard.records reads them)


def reward_terms_text(terms: dict[str, float]) -> str:
    """A turn's immediate reward terms, the non-zero ones: ``"length +0.050, progress +0.150"`` (``"none"``)."""
    return ", ".join(f"{name} {value:+.3f}" for name, value in terms.items() if value) or "none"


def render_conversation(record: EpisodeRecord) -> str:
    """A finished conversation as readable text: objective, outcome, the turns, and every exposed hallucination.

    Each user message is followed by its immediate reward terms (``  [reward] ...``) and each agent answer by the
    tools the agent called to make it (``  [tool] name {arguments} -> ok {data}``, one line per call)."""
    outcome = record.outcome
    verdict = "success" if outcome.success else "no verified booking"
    lines = [f"objective: {record.objective.text}",
             f"outcome: {verdict} | reward {outcome.episode_reward:.3f} | verifier {outcome.verifier_score:.2f}"]
    user_turns = 0
    for message in record.transcript:
        lines.append(f"  {message.role}: {message.text}")
        if message.role == "user":
            user_turns += 1
            if user_turns <= len(record.reward_components):
                lines.append(REWARD_LINE + reward_terms_text(record.reward_components[user_turns - 1]))
        elif 0 < user_turns <= len(record.tool_calls):
            lines += [TOOL_LINE + call.describe() for call in record.tool_calls[user_turns - 1]]
    lines += [f"  !! HALLUCINATION EXPOSED ({kind}): {reason}" for kind, reason in outcome.hallucinations]
    return "\n".join(lines)


def sample_conversations(records: Sequence[EpisodeRecord], count: int) -> list[str]:
    """``count`` rendered conversations, those that exposed a hallucination first."""
    ordered = sorted(records, key=lambda record: not record.hallucinated)  # stable: rollout order otherwise
    return [render_conversation(record) for record in ordered[:count]]


def epoch_metrics(epoch: int, records: Sequence[EpisodeRecord], stats: RolloutStats, rollout_seconds: float,
                  findings: Sequence[dict[str, Any]], bonuses: Sequence[float], sample_count: int,
                  reduce: Callable[[dict[str, float]], dict[str, float]] = lambda metrics: metrics) -> dict[str, Any]:
    """One epoch's record of its rollouts for ``training_metrics.json`` and TensorBoard (the PPO update's metrics
    and the buffers' sizes are added by the loop). ``reduce`` averages the episode means over processes.

    ``train/reward_mean`` is the return PPO learned from (the environment's reward plus ``bonuses``, the novelty
    bonus of fuzzing); ``env/reward_mean`` is the environment's alone.
    """
    metrics: dict[str, Any] = {"epoch": epoch, "architecture": "stateless"}
    if stats.last_error:
        metrics["last_error"] = stats.last_error
    metrics.update(reduce(episode_metrics(records)))
    metrics.update({"env/errors": stats.errors, "env/episodes": len(records),
                    "state_completeness": metrics["env/state_completeness"],
                    "time/rollout": rollout_seconds,
                    "time/generation": stats.generation_seconds, "time/environment": stats.environment_seconds,
                    "time/tokens_per_second": stats.generated_tokens / max(stats.generation_seconds, 1e-9)})
    metrics["hallucination_kinds"] = hallucination_kind_counts(records)
    metrics["fuzz/findings"] = len(findings)
    metrics["fuzz/distinct_triggers"] = len({f["trigger_message"] for f in findings})
    metrics.update(reduce(trained_reward_metrics(records, bonuses)))
    metrics["episode_lengths"] = [len(r.responses) for r in records]
    metrics["sample_conversations"] = sample_conversations(records, sample_count)
    return metrics

