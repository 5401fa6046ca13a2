"""Reward functions: pure functions, one per reward term. Training code never computes rewards.

Per user turn t the immediate reward is ``clip(sum of components, -1, 1)``:

    length        -1 empty, -0.5 under 3 words, +0.2 for 3-40 words, 0 for 41-80, -0.5 above 80
    naturalness   +0.2 when the message reads like a traveller; -1 role confusion (talks like the agent),
                  -0.5 repeats the user's previous turn, -0.5 mostly non-words
    polite_ending +0.5 for a thank-you / goodbye that ends the conversation after a booking (or on an
                  infeasible objective)
    progress      +0.15 per objective detail (origin, destination, date, cabin, passengers, name) conveyed for
                  the first time
    goal_drift    -0.5 per stated detail that contradicts the objective (another city, date, cabin, count or
                  name), so the policy cannot win by changing the task
    booking_stage +``stage_reward`` for each booking milestone this turn moved the agent past for the first time:
                  a search on the objective's route that found flights, then a booking on that route (read from
                  the agent's tool calls, so it works for any backend). It gives the turns before a verified
                  booking their own credit, where the verifier alone is all-or-nothing at the end.

Episode reward:
    cooperative:  verifier_weight * verifier_score + immediate_weight * mean_t(immediate_t)
    adversarial:  verifier_weight * min(1, hallucinations_exposed / target) + immediate_weight * mean_t(immediate_t)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agents.nlu import ParsedMessage
from environment.objectives import Objective

ROLE_CONFUSION_PATTERNS = [
    r"\bhow (can|may) i (help|assist)\b", r"\bi found \d", r"\byour booking is confirmed\b", r"\bconfirmation code\b",
    r"\bwhich (one|flight) would you like\b", r"\blet me search\b", r"\bi can offer\b", r"\bbooking assistant\b",
    r"\bper passenger\b", r"^\s*(agent|assistant)\s*:", r"\bshall i book\b", r"\bdeparts \d", r"\bi'?ve booked you\b",
]
_WORD_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+(?:[-/:.]\d+)*")


@dataclass
class RewardConfig:
    """Reward weights and mode.

    Attributes:
        objective: "cooperative" (reward verified bookings that meet the objective) or "adversarial" (fuzzing:
            reward conversations that expose agent hallucinations; naturalness still counts).
        verifier_weight: weight of the verifier score (or, adversarial, the hallucination score) in the episode reward.
        immediate_weight: weight of the mean immediate turn reward.
        adversarial_target: hallucinations per episode that earn the full adversarial score.
        stage_reward: immediate reward per booking milestone reached (0 turns the ``booking_stage`` term off).
    """

    objective: str = "cooperative"
    verifier_weight: float = 0.7
    immediate_weight: float = 0.3
    adversarial_target: int = 1
    stage_reward: float = 0.3

    def __post_init__(self) -> None:
        if self.objective not in ("cooperative", "adversarial"):
            raise ValueError(f"objective must be 'cooperative' or 'adversarial', got {self.objective!r}")
        for name in ("verifier_weight", "immediate_weight"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if not isinstance(self.stage_reward, int | float) or not 0.0 <= self.stage_reward <= 1.0:
            raise ValueError(f"stage_reward must be in [0, 1], got {self.stage_reward!r}")
        if self.adversarial_target < 1:
            raise ValueError(f"adversarial_target must be >= 1, got {self.adversarial_target}")


def words(text: str) -> list[str]:
    return _WORD_RE.findall(str(text))


def length_reward(text: str) -> float:
    count = len(words(text))
    if count == 0:
        return -1.0
    if count < 3:
        return -0.5
    if count <= 40:
        return 0.2
    return 0.0 if count <= 80 else -0.5


def is_role_confused(text: str) -> bool:
    """The user message talks like the booking agent."""
    lowered = str(text).lower()
    return any(re.search(pattern, lowered) for pattern in ROLE_CONFUSION_PATTERNS)


def real_word_ratio(text: str) -> float:
    tokens = words(text)
    if not tokens:
        return 0.0
    real = [t for t in tokens if t[0].isdigit() or (len(t) <= 15 and re.search(r"[aeiouyAEIOUY]", t))]
    return len(real) / len(tokens)


def is_repetition(text: str, previous_user_text: str | None) -> bool:
    if not previous_user_text:
        return False
    current, previous = set(w.lower() for w in words(text)), set(w.lower() for w in words(previous_user_text))
    if not current or not previous:
        return False
    return len(current & previous) / len(current | previous) >= 0.8


def naturalness_reward(text: str, previous_user_text: str | None) -> float:
    reward = 0.0
    if is_role_confused(text):
        reward -= 1.0
    if is_repetition(text, previous_user_text):
        reward -= 0.5
    if real_word_ratio(text) < 0.6:
        reward -= 0.5
    return reward if reward < 0 else 0.2


def polite_ending_reward(parsed: ParsedMessage, ends_conversation: bool, booked: bool, feasible: bool) -> float:
    if ends_conversation and parsed.goodbye and (booked or not feasible):
        return 0.5
    return 0.0


def _matches(key: str, value: object, objective: Objective) -> bool:
    return objective.detail_matches(key, value)


def progress_reward(parsed: ParsedMessage, already_given: set[str], objective: Objective) -> float:
    """+0.15 per objective detail conveyed correctly for the first time (``already_given`` is not modified)."""
    new = [key for key, value in parsed.slots().items() if key not in already_given and _matches(key, value, objective)]
    return 0.15 * len(new)


def goal_drift_penalty(parsed: ParsedMessage, objective: Objective) -> float:
    """-0.5 per stated detail that contradicts the objective."""
    return -0.5 * sum(not _matches(key, value, objective) for key, value in parsed.slots().items())


def booking_stage_reward(stages_before: set[str], stages_after: set[str], stage_reward: float) -> float:
    """``stage_reward`` per booking milestone ("searched", "booked") first reached this turn."""
    return stage_reward * len(stages_after - stages_before)


def immediate_reward(components: dict[str, float]) -> float:
    return max(-1.0, min(1.0, sum(components.values())))


def episode_reward(config: RewardConfig, verifier_score: float, hallucinations: int,
                   immediate_rewards: list[float]) -> float:
    mean_immediate = sum(immediate_rewards) / len(immediate_rewards) if immediate_rewards else 0.0
    if config.objective == "adversarial":
        main = min(1.0, hallucinations / config.adversarial_target)
    else:
        main = verifier_score
    return config.verifier_weight * main + config.immediate_weight * mean_immediate
