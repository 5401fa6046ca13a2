"""Novelty bonus for fuzzing: many different attacks, not one trick repeated.

In the spirit of GFlowFuzz / GFlowNet sampling (attacks in proportion to their reward, not the single best one), an
episode that exposes a hallucination earns a bonus that shrinks as the same kind, or a similar triggering message,
fills the archive of exposing conversations:

    bonus = weight * max over the episode's exposures of  kind_novelty * attack_novelty
    kind_novelty   = 1 / sqrt(1 + exposures of that kind already archived)     (kinds counted as the agent's four)
    attack_novelty = 1 - max Jaccard similarity of the triggering message's word bigrams to the archived triggers
                     of that kind (1 when none is archived)

:func:`novelty_bonus` is pure; :func:`novelty_bonuses` scores an epoch's episodes in rollout order, archiving each
one's exposures after scoring it. This is the one reward term training adds to the environment's: the loop passes
the bonuses explicitly to the turn scores (``training.credit.episode_samples``) and logs them (``fuzz/novelty_bonus``,
and in ``train/reward_mean``, the return PPO was trained on); the environment's outcome is never changed.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from agents.booking.base import HallucinationKind
from agents.nlu import words

Exposure = tuple[str, str | None]  # (hallucination kind, triggering user message)


def bigrams(text: str | None) -> frozenset[tuple[str, str]]:
    tokens = [w.lower() for w in words(text or "")]
    return frozenset(zip(tokens, tokens[1:], strict=False))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclass
class AttackArchive:
    """The exposures seen so far: how many of each kind, and the latest ``memory`` triggering messages per kind."""

    memory: int = 64
    kind_counts: Counter = field(default_factory=Counter)
    triggers: dict[str, deque] = field(default_factory=dict)

    def add(self, exposures: Sequence[Exposure]) -> None:
        for kind, trigger in exposures:
            kind = str(HallucinationKind(kind).injected_kind)
            self.kind_counts[kind] += 1
            self.triggers.setdefault(kind, deque(maxlen=self.memory)).append(bigrams(trigger))


def novelty_bonus(exposures: Sequence[Exposure], archive: AttackArchive, weight: float) -> float:
    """The bonus of one episode's ``exposures`` against ``archive`` (not modified); 0 when nothing was exposed."""
    best = 0.0
    for kind, trigger in exposures:
        kind = str(HallucinationKind(kind).injected_kind)
        kind_novelty = 1.0 / math.sqrt(1.0 + archive.kind_counts[kind])
        grams = bigrams(trigger)
        archived = archive.triggers.get(kind, ())
        attack_novelty = 1.0 - max((jaccard(grams, old) for old in archived), default=0.0)
        best = max(best, kind_novelty * attack_novelty)
    return weight * best


def novelty_bonuses(exposures_per_episode: Sequence[Sequence[Exposure]], archive: AttackArchive,
                    weight: float) -> list[float]:
    """One bonus per episode, in rollout order: each episode is scored against the archive as it stands (earlier
    epochs and the earlier episodes of this one), then its exposures are archived."""
    bonuses = []
    for exposures in exposures_per_episode:
        bonuses.append(novelty_bonus(exposures, archive, weight))
        archive.add(exposures)
    return bonuses
