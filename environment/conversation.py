"""The conversation environment: owns ALL state (objective, full history, booking context, turn).

The auto-user policy is stateless: it sees only ``format_state(state)``, a complete Markovian description of the
episode, and returns the next user message. Two environments with equal state produce identical strings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.booking import Message, make_booking_agent
from agents.nlu import MAX_AGENT_TEXT_CHARS, airport_lookup, parse_message
from agents.tool_client import ToolCall, make_tool_client
from environment.verifier import BookingVerifier, VerificationResult
from database import EpisodeDatabase, FlightDatabase
from database.build import TODAY, ensure_database
from environment import rewards
from environment.config import EnvironmentConfig
from environment.objectives import Objective

MAX_USER_MESSAGE_CHARS = 2000
# Agent replies (an LLM agent's may run to megabytes) are cut to what the parser reads; the verifier, the rewards
# and the policy's state then never see more.
MAX_AGENT_MESSAGE_CHARS = MAX_AGENT_TEXT_CHARS


@dataclass
class ConversationState:
    """Everything about an episode. The policy's input is derived from this and nothing else."""

    objective: Objective
    history: list[Message] = field(default_factory=list)
    turn: int = 0  # user turns taken so far
    booking_context: dict[str, Any] = field(default_factory=dict)
    details_given: set[str] = field(default_factory=set)  # objective details the user has already conveyed
    stages: set[str] = field(default_factory=set)  # booking milestones reached: "searched", "booked"
    done: bool = False
    truncated: bool = False


@dataclass
class EnvironmentStep:
    state: ConversationState
    reward: float  # immediate_weight x this turn's immediate reward (the episode reward is in info at the end)
    done: bool
    truncated: bool
    info: dict[str, Any]


class BookingConversationEnvironment:
    """One conversation at a time between the auto-user (caller) and the fixed booking agent.

    Args:
        config: environment configuration.
        objectives: objectives to sample from on ``reset()`` when none is given.
        worker_id: distinguishes this environment's database working copy from its neighbours'.
        tokenizer: needed for ``state_template="chat"`` (its chat template renders the state).
    """

    def __init__(self, config: EnvironmentConfig, objectives: list[Objective] | None = None, worker_id: int = 0,
                 tokenizer: Any = None):
        self.config = config
        self.objectives = list(objectives or [])
        self.worker_id = worker_id
        self.tokenizer = tokenizer
        if config.state_template == "chat" and tokenizer is None:
            raise ValueError("state_template 'chat' needs a tokenizer with a chat template")
        template = ensure_database(config.db_path, seed=config.db_seed)
        self.database = EpisodeDatabase(template, config.workdir, worker_id=worker_id)
        self.tools = make_tool_client(config.agent.transport, self.database.path)
        self.agent = make_booking_agent(config.agent, self.tools, today=TODAY)
        self.verifier = BookingVerifier(config.verifier)
        self.rng = random.Random(config.seed * 1_000_003 + worker_id)
        self.state: ConversationState | None = None
        self.immediate_rewards: list[float] = []
        self.reward_components: list[dict[str, float]] = []
        self.injected: list[Any] = []

    # -- episode lifecycle ---------------------------------------------------------------------------------------
    def reset(self, objective: Objective | None = None, seed: int | None = None) -> ConversationState:
        """Start an episode: fresh database copy, an objective, empty history (the agent may open)."""
        if seed is not None:
            self.rng = random.Random(seed)
        if objective is None:
            if not self.objectives:
                raise ValueError("reset() needs an objective when the environment has none to sample")
            objective = self.rng.choice(self.objectives)
        episode_seed = self.rng.randrange(2**31)
        self.database.reset(code_salt=episode_seed)
        self.agent.reset(episode_seed)
        history = [Message("agent", self.agent.opening()[:MAX_AGENT_MESSAGE_CHARS])] if self.config.agent_opens else []
        self.state = ConversationState(objective=objective, history=history)
        self.immediate_rewards, self.reward_components, self.injected = [], [], []
        return self.state

    async def step(self, user_message: str) -> EnvironmentStep:
        """Take one user turn: score it, let the agent answer, end the episode when it is over."""
        state = self.state
        if state is None or state.done or state.truncated:
            raise RuntimeError("call reset() before step(); the episode is over")
        text = " ".join(str(user_message).split())[:MAX_USER_MESSAGE_CHARS]  # one line, bounded
        previous_user = next((m.text for m in reversed(state.history) if m.role == "user"), None)
        answering = state.history[-1].text if state.history and state.history[-1].role == "agent" else ""
        parsed = parse_message(text, _airport_lookup_for(self.database.path), TODAY, answering)
        booked = state.booking_context.get("booking_status") == "booked"
        # The user ends the episode by saying goodbye (after a booking or not) or by giving up.
        ends = (parsed.goodbye or parsed.give_up) and not parsed.slots() and not parsed.confirm
        components = {
            "length": rewards.length_reward(text),
            "naturalness": rewards.naturalness_reward(text, previous_user),
            "polite_ending": rewards.polite_ending_reward(parsed, ends, booked, state.objective.feasible),
            "progress": rewards.progress_reward(parsed, state.details_given, state.objective),
            "goal_drift": rewards.goal_drift_penalty(parsed, state.objective),
        }
        state.details_given |= set(parsed.slots())
        state.history.append(Message("user", text))
        state.turn += 1
        info: dict[str, Any] = {"reward_components": components, "role_confused": rewards.is_role_confused(text)}
        stages_before = set(state.stages)
        if ends:
            state.done = True
        else:
            turn = await self.agent.respond(state.history)
            if not turn.error:  # a failed backend call leaves no (empty) agent message behind
                state.history.append(Message("agent", turn.text[:MAX_AGENT_MESSAGE_CHARS]))
            self._update_context(turn.tool_calls)
            self.injected.extend(turn.injected)
            if turn.error:
                state.done = True
                info["error"] = turn.error
        components["booking_stage"] = rewards.booking_stage_reward(stages_before, state.stages,
                                                                   self.config.reward.stage_reward)
        immediate = rewards.immediate_reward(components)
        self.immediate_rewards.append(immediate)
        self.reward_components.append(components)
        if not state.done and state.turn >= self.config.max_conversation_length:
            state.truncated = True
        if state.done or state.truncated:
            info.update(self._finish())
        return EnvironmentStep(state, self.config.reward.immediate_weight * immediate, state.done, state.truncated,
                               info)

    def _finish(self) -> dict[str, Any]:
        result: VerificationResult = self.verifier.verify(self.state.history, self.database.path, self.state.objective)
        total = rewards.episode_reward(self.config.reward, result.score, len(result.hallucinations),
                                       self.immediate_rewards)
        return {
            "verification": result,
            "verifier_score": result.score,
            "episode_reward": total,
            "hallucinations": [(h.kind, h.reason) for h in result.hallucinations],
            "success": result.booking is not None and result.booking_matches_objective and not result.hallucinations,
            "injected": [h.kind for h in self.injected],
        }

    def _update_context(self, calls: list[ToolCall]) -> None:
        context = self.state.booking_context
        for call in calls:
            if not call.result.ok:
                context["last_tool_error"] = call.result.error
                continue
            if call.name == "search_flights":
                args = call.arguments
                if call.result.data["count"] and self._on_route(args.get("origin"), args.get("destination")):
                    self.state.stages.add("searched")
                context["search"] = (f"{args['origin']} to {args['destination']} on {args['date']}, "
                                     f"{args.get('cabin', 'economy')}, {args.get('passengers', 1)} passenger(s): "
                                     f"{call.result.data['count']} flight(s)")
            elif call.name in ("book_flight", "cancel_booking"):
                context["booking_code"] = call.result.data["confirmation_code"]
                context["booking_status"] = call.result.data["status"]
                if call.name == "book_flight" and self._on_route(call.result.data["origin"],
                                                                 call.result.data["destination"]):
                    self.state.stages.add("booked")
                context["booking"] = (f"{call.result.data['flight_number']} on {call.result.data['date']}, "
                                      f"{call.result.data['cabin']}, total ${call.result.data['total_price']:.2f}")

    def _on_route(self, origin: object, destination: object) -> bool:
        objective = self.state.objective
        return (str(origin).upper(), str(destination).upper()) == (objective.origin, objective.destination)

    # -- the policy's view ---------------------------------------------------------------------------------------
    def format_state(self, state: ConversationState | None = None) -> str:
        """The complete Markovian state string: objective, recent history, booking context, turn, and the prompt."""
        state = state or self.state
        context = state.booking_context
        parts = [context[key] for key in ("search", "booking") if key in context]
        if "booking_status" in context:
            parts.append(f"status {context['booking_status']} (code {context['booking_code']})")
        context_text = "; ".join(parts) if parts else "nothing searched or booked yet"
        fields = {"objective": state.objective.text, "context": context_text, "turn": state.turn + 1,
                  "max_turns": self.config.max_conversation_length}
        recent = state.history[-self.config.history_window:]
        if self.config.state_template == "chat":
            messages = [{"role": "system", "content": self.config.system_template.format(**fields)}]
            messages += [{"role": "assistant" if m.role == "user" else "user", "content": m.text} for m in recent]
            if messages[-1]["role"] != "user":
                messages.append({"role": "user", "content": "(waiting for your message)"})
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        labels = {"agent": "Agent: ", "user": "User: "} if self.config.speaker_labels else {"agent": "", "user": ""}
        history = self.config.turn_separator.join(f"{labels[m.role]}{m.text}" for m in recent) or "(none yet)"
        return self.config.plain_template.format(history=history, **fields)

    async def aclose(self) -> None:
        await self.tools.close()
        self.database.close()


_AIRPORT_CACHE: dict[str, dict[str, str]] = {}


def _airport_lookup_for(path: Path) -> dict[str, str]:
    """Airport names for parsing user text (the rewards' view; the agent looks them up through its tools)."""
    key = str(path)
    if key not in _AIRPORT_CACHE:
        with FlightDatabase(path, read_only=True) as db:
            _AIRPORT_CACHE[key] = airport_lookup(db.list_airports())
    return _AIRPORT_CACHE[key]


def state_is_complete(state: ConversationState, text: str) -> bool:
    """Whether a state string carries the objective, the latest history message and the turn number."""
    latest = state.history[-1].text if state.history else ""
    return state.objective.text in text and latest[:200] in text and f"Turn: {state.turn + 1}" in text
