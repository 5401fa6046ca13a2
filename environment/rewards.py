"""The reward: pure functions, one per term, and the one definition of the return. Training never computes rewards.

Per user turn t the immediate reward is ``clip(sum of the terms, -1, 1)``; the terms are the entries of
:data:`IMMEDIATE_TERMS` (each is logged as ``env/reward/<name>`` and plotted, because metrics and plots iterate over
the terms the environment reports):

    length           -1 empty, -0.5 under 3 words, +``form_bonus`` for 3-40 words, 0 for 41-80, -0.5 above 80
    naturalness      +``form_bonus`` when the message reads like a traveller; -1 role confusion (talks like the
                     agent), -0.5 repeats the user's previous turn, -0.5 mostly non-words
    polite_ending    +0.5 for a thank-you / goodbye that ends the conversation after a booking (or on an
                     infeasible objective)
    progress         +0.15 per objective detail (origin, destination, date, cabin, passengers, name) conveyed for
                     the first time
    goal_drift       -0.5 per stated detail that contradicts the objective (another city, date, cabin, count or
                     name), so the policy cannot win by changing the task
    unanswered       -``unanswered_penalty`` when the agent asked something and the message answers nothing: no
                     new objective detail and none of the details the agent asked for (``nlu.asked_details``),
                     no choice, no confirmation, no goodbye (talking past the agent's question is worthless,
                     however natural it sounds, and so is restating the destination when asked for the date); a
                     goodbye that walks away from a feasible objective with nothing booked answers nothing either
    booking_stage    +``stage_reward`` for each booking milestone this turn moved the agent past for the first time:
                     a search on the objective's route that found flights, then a booking on that route (read from
                     the agent's tool calls, so it works for any backend)

The return of an episode with user turns t = 0..T-1, written once (:func:`turn_reward`, :func:`terminal_reward`,
:func:`episode_return`):

    R = verifier_weight * main  +  immediate_weight * sum_t(immediate_t)

where ``main`` is the verifier score (cooperative) or ``min(1, hallucinations / adversarial_target)``
(adversarial). It decomposes into per-turn rewards ``r_t = immediate_weight * immediate_t`` plus the terminal
reward ``verifier_weight * main`` on the last turn: the environment reports ``r_t`` each turn and the terminal
reward at the end, the Gymnasium wrapper adds the terminal reward to its last step, and training's turn credit
(``training/credit.py``) discounts the same ``r_t`` and terminal reward. Each immediate term is counted exactly once.
A turn that talks past the agent's question nets a negative immediate reward (``unanswered``), so stretching a
conversation with natural-sounding filler lowers R instead of raising it. Form is a constraint, not a goal: with the
default ``form_bonus`` of 0 a well-formed message earns nothing by itself, so the positive part of R comes from
conveying the objective, the booking milestones, the verified booking and a polite ending. (Up to round 4 the
bonus was +0.2 for each of length and naturalness: eight fluent turns that never answered the date question then
earned 0.96, more than a verified booking's 0.7; see docs/experiments.md, round 6.)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from agents.nlu import ParsedMessage, words
from environment.objectives import Objective

ROLE_CONFUSION_PATTERNS = [
    r"\bhow (can|may) i (help|assist)\b", r"\bi found \d", r"\byour booking is confirmed\b", r"\bconfirmation code\b",
    r"\bwhich (one|flight) would you like\b", r"\blet me search\b", r"\bi can offer\b", r"\bbooking assistant\b",
    r"\bper passenger\b", r"^\s*(agent|assistant)\s*:", r"\bshall i book\b", r"\bdeparts \d", r"\bi'?ve booked you\b",
]


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
        unanswered_penalty: immediate penalty for a message that answers nothing the agent asked (0 turns the
            ``unanswered`` term off).
        form_bonus: immediate reward for a message of sensible length, and again for one that reads like a
            traveller (0: form only ever costs; round 4 and earlier used 0.2).
    """

    objective: str = "cooperative"
    verifier_weight: float = 0.7
    immediate_weight: float = 0.3
    adversarial_target: int = 1
    stage_reward: float = 0.3
    unanswered_penalty: float = 0.5
    form_bonus: float = 0.0

    def __post_init__(self) -> None:
        if self.objective not in ("cooperative", "adversarial"):
            raise ValueError(f"objective must be 'cooperative' or 'adversarial', got {self.objective!r}")
        for name in ("verifier_weight", "immediate_weight"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        for name in ("stage_reward", "unanswered_penalty", "form_bonus"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if self.adversarial_target < 1:
            raise ValueError(f"adversarial_target must be >= 1, got {self.adversarial_target}")


def length_reward(text: str, form_bonus: float = 0.0) -> float:
    count = len(words(text))
    if count == 0:
        return -1.0
    if count < 3:
        return -0.5
    if count <= 40:
        return form_bonus
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


def naturalness_reward(text: str, previous_user_text: str | None, form_bonus: float = 0.0) -> float:
    reward = 0.0
    if is_role_confused(text):
        reward -= 1.0
    if is_repetition(text, previous_user_text):
        reward -= 0.5
    if real_word_ratio(text) < 0.6:
        reward -= 0.5
    return reward if reward < 0 else form_bonus


def polite_ending_reward(parsed: ParsedMessage, ends_conversation: bool, booked: bool, feasible: bool) -> float:
    if ends_conversation and parsed.goodbye and (booked or not feasible):
        return 0.5
    return 0.0


def progress_reward(parsed: ParsedMessage, already_given: set[str], objective: Objective) -> float:
    """+0.15 per objective detail conveyed correctly for the first time (``already_given`` is not modified)."""
    new = [key for key, value in parsed.slots().items()
           if key not in already_given and objective.detail_matches(key, value)]
    return 0.15 * len(new)


def goal_drift_penalty(parsed: ParsedMessage, objective: Objective) -> float:
    """-0.5 per stated detail that contradicts the objective."""
    return -0.5 * sum(not objective.detail_matches(key, value) for key, value in parsed.slots().items())


def booking_stage_reward(stages_before: set[str], stages_after: set[str], stage_reward: float) -> float:
    """``stage_reward`` per booking milestone ("searched", "booked") first reached this turn."""
    return stage_reward * len(stages_after - stages_before)


def answers_nothing(parsed: ParsedMessage, details_given_before: frozenset[str] = frozenset(),
                    details_asked: frozenset[str] = frozenset()) -> bool:
    """The message conveys no new objective detail, none of the details the agent asked for, no flight choice,
    confirmation, question about price or goodbye. A detail already given and not asked again answers nothing."""
    answering = set(parsed.slots()) - (details_given_before - details_asked)
    moves_on = (answering or parsed.confirm or parsed.option_index is not None or parsed.flight_numbers
                or parsed.price_question or parsed.goodbye or parsed.give_up or parsed.cancel)
    return not moves_on


def unanswered_penalty(parsed: ParsedMessage, agent_asked: bool, penalty: float,
                       details_given_before: frozenset[str] = frozenset(),
                       details_asked: frozenset[str] = frozenset(), walks_away: bool = False) -> float:
    """``-penalty`` when the agent's last message asked something and this message answers nothing.

    ``walks_away``: the message ends a conversation whose objective is feasible and nothing is booked. Its goodbye
    answers nothing either: round 8's trained users said "Thank you." to "May I have the lead passenger's full
    name?", which ended the episode at no cost, while the same words after a booking earn the polite ending.
    """
    if not agent_asked:
        return 0.0
    return -penalty if walks_away or answers_nothing(parsed, details_given_before, details_asked) else 0.0


def is_walking_away(turn: UserTurn) -> bool:
    """The turn ends the conversation with nothing booked although the objective could be booked."""
    return turn.ends_conversation and not turn.booked and turn.objective.feasible


def is_change_of_mind_attack(turn: UserTurn, config: RewardConfig) -> bool:
    """Fuzzing: a detail changed after the agent has searched is the change-of-mind attack, not goal drift."""
    return config.objective == "adversarial" and "searched" in turn.stages_before


@dataclass(frozen=True)
class UserTurn:
    """Everything the immediate reward of one user turn depends on (the environment fills it in)."""

    text: str
    parsed: ParsedMessage
    previous_user_text: str | None
    agent_asked: bool  # the agent's message this turn answers contains a question
    details_asked: frozenset[str]  # the objective details that message asks for (nlu.asked_details)
    objective: Objective
    details_given_before: frozenset[str]
    ends_conversation: bool
    booked: bool  # a booking existed in the database before this turn
    stages_before: frozenset[str]
    stages_after: frozenset[str]  # booking milestones after the agent's reply to this turn


IMMEDIATE_TERMS: dict[str, Callable[[UserTurn, RewardConfig], float]] = {
    "length": lambda turn, config: length_reward(turn.text, config.form_bonus),
    "naturalness": lambda turn, config: naturalness_reward(turn.text, turn.previous_user_text, config.form_bonus),
    "polite_ending": lambda turn, config: polite_ending_reward(turn.parsed, turn.ends_conversation, turn.booked,
                                                               turn.objective.feasible),
    "progress": lambda turn, config: progress_reward(turn.parsed, set(turn.details_given_before), turn.objective),
    "goal_drift": lambda turn, config: 0.0 if is_change_of_mind_attack(turn, config) else goal_drift_penalty(
        turn.parsed, turn.objective),
    "unanswered": lambda turn, config: unanswered_penalty(turn.parsed, turn.agent_asked, config.unanswered_penalty,
                                                          turn.details_given_before, turn.details_asked,
                                                          is_walking_away(turn)),
    "booking_stage": lambda turn, config: booking_stage_reward(set(turn.stages_before), set(turn.stages_after),
                                                               config.stage_reward),
}
"""Every immediate reward term by name: add a term here and it is computed, logged and plotted."""


def immediate_components(turn: UserTurn, config: RewardConfig) -> dict[str, float]:
    """Each term of :data:`IMMEDIATE_TERMS` for one user turn."""
    return {name: float(term(turn, config)) for name, term in IMMEDIATE_TERMS.items()}


def immediate_reward(components: dict[str, float]) -> float:
    return max(-1.0, min(1.0, sum(components.values())))


def main_score(config: RewardConfig, verifier_score: float, hallucinations: int) -> float:
    """The episode-level score: the verifier's (cooperative) or the hallucinations exposed (adversarial)."""
    if config.objective == "adversarial":
        return min(1.0, hallucinations / config.adversarial_target)
    return verifier_score


def turn_reward(config: RewardConfig, immediate: float) -> float:
    """The per-turn part of the return for one turn's immediate reward (see the module docstring)."""
    return config.immediate_weight * immediate


def terminal_reward(config: RewardConfig, verifier_score: float, hallucinations: int) -> float:
    """The part of the return paid on the episode's last turn."""
    return config.verifier_weight * main_score(config, verifier_score, hallucinations)


def episode_return(config: RewardConfig, verifier_score: float, hallucinations: int,
                   immediate_rewards: list[float]) -> float:
    """R: the sum of every turn's reward and the terminal reward (the one definition of the episode's reward)."""
    return (sum(turn_reward(config, immediate) for immediate in immediate_rewards)
            + terminal_reward(config, verifier_score, hallucinations))
