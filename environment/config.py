"""Configuration of the conversation environment."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Literal

from agents.booking.base import BookingAgentConfig
from environment.personas import PERSONAS
from environment.rewards import RewardConfig
from environment.verifier import VerifierConfig

PLAIN_TEMPLATE = (
    "You are a traveller chatting with an airline booking agent. Write only your next message.\n"
    "Objective: {objective}\n"
    "Booking context: {context}\n"
    "Turn: {turn} of {max_turns}\n"
    "Conversation:\n{history}\n"
    "User:"
)
GOAL_CHECK_PLACEMENTS = ("context", "last_line")  # EnvironmentConfig.goal_check_placement
STATE_FIELDS = ("objective", "context", "turn", "max_turns")  # what format_state fills in (plus "history")
SYSTEM_TEMPLATE = (
    "You are a traveller chatting with an airline booking agent. Reply with your next message only.\n"
    "Objective: {objective}\nBooking context: {context}\nTurn: {turn} of {max_turns}"
)


@dataclass
class EnvironmentConfig:
    """The conversation environment.

    Attributes:
        db_path: template flight database; ``None`` builds/uses ``database/flights.db`` (seed ``db_seed``).
        db_seed: generator seed for the default database.
        workdir: where per-environment working copies live; ``None``: a ``flightdb-<pid>-*`` temp dir, removed on
            close, or by the next environment to start if this process was killed.
        max_conversation_length: user turns before an episode is truncated.
        history_window: messages of history shown in the state (the most recent ones).
        state_template: "plain" (``plain_template``) or "chat" (the tokenizer's chat template: the booking agent
            speaks as "user", the auto-user as "assistant", objective and context in the system message).
        plain_template: format string with {objective}, {context}, {turn}, {max_turns}, {history}.
        turn_separator: joins history messages in the plain form ("\n" by default; DialoGPT's format separates
            turns with its eos token "<|endoftext|>").
        speaker_labels: prefix plain-form messages with "Agent: " / "User: " (DialoGPT is trained without them).
        system_template: system message of the chat form, same fields but {history}.
        agent_opens: the booking agent greets first.
        num_objectives: objectives generated from the database for the train/eval split.
        eval_fraction: share of objectives held out for evaluation.
        infeasible_fraction: share of infeasible objectives.
        objectives_file: optional JSONL of user-supplied objectives (replaces the generated training objectives).
        objectives_seed: seeds objective generation and the train/held-out split (data, not the run's randomness:
            runs with different seeds share it, so they are evaluated on the same held-out objectives).
        seed: seeds episode sampling and each episode's database salt and agent RNG; ``None`` takes the training
            run's top-level ``seed`` (0 for an environment built on its own).
        objective_summary: add a "Goal:" line under the objective's text in the state: its fields in one fixed
            form (``Objective.summary``: cities with their airport codes, the date with its weekday, cabin, party
            size, lead passenger, budget), so the policy reads the same goal however the text is worded.
        goal_check: end the booking context line with what the agent's latest search got wrong about the goal
            ("not your goal: 1 passenger (you want 3)", ``environment/goal_check.py``): the party size, cabin or
            date it assumed, until the user's message corrects it; after a matching search that found nothing,
            the dates within the objective's flexibility not tried yet ("no flights: no other date fits your
            goal"). The environment holds both sides; a small policy rarely compares them itself.
        goal_check_placement: where the goal check's note goes: "context" (the end of the booking context line) or
            "last_line" (a "Goal check: ..." line right after the latest message, where the reply starts: the
            plain form puts it before "User:", the chat form at the end of the agent's message). Round 13's main
            recipe; alone it changed no probe (docs/experiments.md: the repeated corrections did).
        personas: traveller personas sampled per episode (``environment/personas.py``: hurried, indecisive,
            bargain_hunter, flight_number, relaxed); the persona's line follows the objective in the state. Empty:
            none (cooperative runs). Fuzzing runs list the attack personas.
        agent: the booking agent (``rule`` or ``openai`` backend, each with its own subsection).
        reward: reward weights and mode (``environment/rewards.py``).
        verifier: the verifier's scores.
    """

    db_path: str | None = None
    db_seed: int = 0
    workdir: str | None = None
    max_conversation_length: int = 8
    history_window: int = 20
    state_template: Literal["plain", "chat"] = "plain"
    plain_template: str = PLAIN_TEMPLATE
    turn_separator: str = "\n"
    speaker_labels: bool = True
    system_template: str = SYSTEM_TEMPLATE
    agent_opens: bool = True
    num_objectives: int = 500
    eval_fraction: float = 0.2
    infeasible_fraction: float = 0.1
    objectives_file: str | None = None
    objectives_seed: int = 0
    seed: int | None = None
    objective_summary: bool = False
    goal_check: bool = False
    goal_check_placement: str = "context"
    personas: list[str] = field(default_factory=list)
    agent: BookingAgentConfig = field(default_factory=BookingAgentConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)

    def __post_init__(self) -> None:
        if self.max_conversation_length < 1:
            raise ValueError(f"max_conversation_length must be >= 1, got {self.max_conversation_length}")
        if self.history_window < 1:
            raise ValueError(f"history_window must be >= 1, got {self.history_window}")
        if self.goal_check_placement not in GOAL_CHECK_PLACEMENTS:
            raise ValueError(f"goal_check_placement must be one of {GOAL_CHECK_PLACEMENTS}, "
                             f"got {self.goal_check_placement!r}")
        if self.state_template not in ("plain", "chat"):
            raise ValueError(f"state_template must be 'plain' or 'chat', got {self.state_template!r}")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")
        if not 0.0 <= self.infeasible_fraction < 1.0:
            raise ValueError(f"infeasible_fraction must be in [0, 1), got {self.infeasible_fraction}")
        if self.num_objectives < 2:
            raise ValueError(f"num_objectives must be >= 2, got {self.num_objectives}")
        unknown = sorted(set(self.personas) - set(PERSONAS))
        if unknown:
            raise ValueError(f"personas: unknown persona(s) {', '.join(unknown)}; known: {', '.join(PERSONAS)}")
        _check_template("plain_template", self.plain_template, (*STATE_FIELDS, "history"))
        _check_template("system_template", self.system_template, STATE_FIELDS)


def _check_template(name: str, template: str, allowed: tuple[str, ...]) -> None:
    """A ``str.format`` template may use only the fields ``format_state`` fills in (``{{``/``}}`` for braces)."""
    try:
        fields = [parsed[1] for parsed in string.Formatter().parse(template) if parsed[1] is not None]
    except ValueError as exc:
        raise ValueError(f"{name} is not a valid format string ({exc}); write literal braces as {{{{ and }}}}") \
            from None
    unknown = sorted({f for f in fields if f.split(".")[0].split("[")[0] not in allowed})
    if unknown:
        raise ValueError(f"{name} uses unknown placeholder(s) {', '.join('{' + f + '}' for f in unknown)}; "
                         f"allowed: {', '.join('{' + f + '}' for f in allowed)}")
