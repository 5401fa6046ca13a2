"""The conversation environment: owns ALL state (objective, full history, booking context, turn).

The auto-user policy is stateless: it sees only ``format_state(state)``, a complete Markovian description of the
episode, and returns the next user message. Two environments with equal state produce identical strings.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.booking import Message, make_booking_agent
from agents.nlu import MAX_AGENT_TEXT_CHARS, airport_lookup, asked_details, parse_message
from agents.tool_client import ToolCall, make_tool_client
from database import EpisodeDatabase, FlightDatabase
from database.build import ensure_database
from environment import rewards
from environment.config import EnvironmentConfig
from environment.goal_check import goal_check_note
from environment.objectives import Objective
from environment.personas import Persona, attack_moves, sample_persona
from environment.verifier import BookingVerifier, VerificationResult

MAX_USER_MESSAGE_CHARS = 2000
# Agent replies (an LLM agent's may run to megabytes) are cut to what the parser reads; the verifier, the rewards
# and the policy's state then never see more.
MAX_AGENT_MESSAGE_CHARS = MAX_AGENT_TEXT_CHARS
# Marks where a message (or, as a last resort, the objective) was shortened in its middle to fit the token budget.
CLIP_MARKER = " \u2026 "


@dataclass
class ConversationState:
    """Everything about an episode. The policy's input is derived from this and nothing else."""

    objective: Objective
    history: list[Message] = field(default_factory=list)
    persona: Persona | None = None  # the episode's traveller persona (environment.personas), shown after the objective
    turn: int = 0  # user turns taken so far
    booking_context: dict[str, Any] = field(default_factory=dict)
    details_given: set[str] = field(default_factory=set)  # objective details the user has already conveyed
    stages: set[str] = field(default_factory=set)  # booking milestones reached: "searched", "booked"
    done: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class EpisodeOutcome:
    """How an episode ended, read from the database by the verifier and from the conversation by the environment.

    The one typed record of an episode's result from the environment to training, metrics, findings and evaluation.
    Rewards here are the environment's; what training adds (the fuzzing novelty bonus) it adds explicitly, beside
    this record, never into it.
    """

    verification: VerificationResult
    verifier_score: float
    success: bool  # a booking that meets the objective, read from the database, never from the agent's wording
    terminal_reward: float  # paid on the last user turn (rewards.terminal_reward)
    episode_reward: float  # the episode's return: every immediate term plus the terminal reward
    hallucinations: tuple[tuple[str, str], ...]  # (kind, the verifier's reason) per false claim
    hallucination_turns: tuple[int, ...]  # per hallucination, the user turn (1-based) whose answer made the claim
    injected: tuple[str, ...]  # hallucination kinds the rule agent injected (what it tried, exposed or not)
    persona: str | None
    attack_moves: tuple[tuple[str, ...], ...]  # per user turn, the attack moves it made (environment.personas)

    @property
    def hallucinated(self) -> bool:
        return bool(self.hallucinations)

    def as_info(self) -> dict[str, Any]:
        """The outcome as a Gymnasium-style ``info`` dict (``environment.gym_env``)."""
        return {"verification": self.verification, "verifier_score": self.verifier_score, "success": self.success,
                "terminal_reward": self.terminal_reward, "episode_reward": self.episode_reward,
                "hallucinations": [list(h) for h in self.hallucinations],
                "hallucination_turns": list(self.hallucination_turns), "injected": list(self.injected),
                "persona": self.persona, "attack_moves": [list(moves) for moves in self.attack_moves]}


@dataclass
class EnvironmentStep:
    """What one user turn returns."""

    state: ConversationState
    reward: float  # this turn's part of the return (rewards.turn_reward); outcome.terminal_reward at the end
    done: bool
    truncated: bool
    reward_components: dict[str, float]  # this turn's immediate terms (rewards.IMMEDIATE_TERMS)
    outcome: EpisodeOutcome | None = None  # set on the episode's last step (done or truncated)
    error: str | None = None  # the booking agent's backend failed this turn (the episode ends)
    tool_calls: tuple[ToolCall, ...] = ()  # the tools the agent called to answer this turn, in order

    @property
    def info(self) -> dict[str, Any]:
        """A Gymnasium-style view: the reward terms, the error if any and, at the end, the outcome's fields."""
        info: dict[str, Any] = {"reward_components": self.reward_components}
        if self.error is not None:
            info["error"] = self.error
        if self.outcome is not None:
            info.update(self.outcome.as_info())
        return info


class BookingConversationEnvironment:
    """One conversation at a time between the auto-user (caller) and the fixed booking agent.

    Args:
        config: environment configuration.
        objectives: objectives to sample from on ``reset()`` when none is given.
        worker_id: distinguishes this environment's database working copy from its neighbours'.
        tokenizer: the policy's tokenizer; needed for ``state_template="chat"`` (its chat template renders the state)
            and to fit states into ``max_state_tokens``.
        max_state_tokens: the policy's prompt budget in tokens (its ``max_query_length``). A longer state is fitted
            (``format_state``) so that the policy's left truncation never cuts its head: the objective, persona,
            booking context and turn always reach the policy. ``None``: no limit.

    Raises:
        ValueError: ``max_state_tokens`` without a tokenizer, or too small for the state template's own text.
    """

    def __init__(self, config: EnvironmentConfig, objectives: list[Objective] | None = None, worker_id: int = 0,
                 tokenizer: Any = None, max_state_tokens: int | None = None):
        if max_state_tokens is not None and tokenizer is None:
            raise ValueError("max_state_tokens needs the policy's tokenizer to count tokens")
        self.config = config
        self.max_state_tokens = max_state_tokens
        self.objectives = list(objectives or [])
        self.worker_id = worker_id
        self.tokenizer = tokenizer
        if config.state_template == "chat" and tokenizer is None:
            raise ValueError("state_template 'chat' needs a tokenizer with a chat template")
        if max_state_tokens is not None:
            bare = self._render_fields({"objective": "", "context": "", "turn": config.max_conversation_length,
                                        "max_turns": config.max_conversation_length}, [])
            if self.count_tokens(bare) >= max_state_tokens:
                raise ValueError(f"max_state_tokens {max_state_tokens} cannot hold the state template's own text "
                                 f"({self.count_tokens(bare)} tokens); raise model.max_query_length")
        template = ensure_database(config.db_path, seed=config.db_seed)
        self.database = EpisodeDatabase(template, config.workdir, worker_id=worker_id)
        self.tools = make_tool_client(config.agent.transport, self.database.path)
        with FlightDatabase(template, read_only=True) as db:
            self.today = db.today()  # the database's own today: relative dates resolve against it
        self.agent = make_booking_agent(config.agent, self.tools, self.today)
        self.verifier = BookingVerifier(config.verifier)
        self.rng = random.Random((config.seed or 0) * 1_000_003 + worker_id)
        self.state: ConversationState | None = None
        self.immediate_rewards: list[float] = []
        self.injected: list[Any] = []
        self.attack_moves: list[list[str]] = []  # per user turn (environment.personas.attack_moves)

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
        # The persona depends on the objective too: evaluations replay the same few seeds on every objective.
        persona = (sample_persona(self.config.personas, random.Random(f"{episode_seed}:{objective.objective_id}"))
                   if self.config.personas else None)
        self.database.reset(code_salt=episode_seed)
        self.agent.reset(episode_seed)
        history = [Message("agent", self.agent.opening()[:MAX_AGENT_MESSAGE_CHARS])] if self.config.agent_opens else []
        self.state = ConversationState(objective=objective, history=history, persona=persona)
        self.immediate_rewards, self.injected, self.attack_moves = [], [], []
        return self.state

    async def step(self, user_message: str) -> EnvironmentStep:
        """Take one user turn: score it, let the agent answer, end the episode when it is over."""
        state = self.state
        if state is None or state.done or state.truncated:
            raise RuntimeError("call reset() before step(); the episode is over")
        text = " ".join(str(user_message).split())[:MAX_USER_MESSAGE_CHARS]  # one line, bounded
        previous_user = next((m.text for m in reversed(state.history) if m.role == "user"), None)
        answering = state.history[-1].text if state.history and state.history[-1].role == "agent" else ""
        parsed = parse_message(text, _airport_lookup_for(self.database.path), self.today, answering)
        booked = state.booking_context.get("booking_status") == "booked"
        ends = parsed.ends_conversation(booked)
        details_before, stages_before = frozenset(state.details_given), frozenset(state.stages)
        self.attack_moves.append(attack_moves(parsed, state.objective, "searched" in stages_before))
        state.details_given |= set(parsed.slots())
        state.history.append(Message("user", text))
        state.turn += 1
        error: str | None = None
        calls: tuple[ToolCall, ...] = ()
        if ends:
            state.done = True
        else:
            turn = await self.agent.respond(state.history)
            calls = tuple(turn.tool_calls)
            if not turn.error:  # a failed backend call leaves no (empty) agent message behind
                state.history.append(Message("agent", turn.text[:MAX_AGENT_MESSAGE_CHARS]))
            self._update_context(turn.tool_calls)
            self.injected.extend(turn.injected)
            if turn.error:
                state.done = True
                error = turn.error
        details_asked = asked_details(answering)
        user_turn = rewards.UserTurn(
            text=text, parsed=parsed, previous_user_text=previous_user,
            agent_asked="?" in answering or bool(details_asked), details_asked=details_asked,
            objective=state.objective, details_given_before=details_before, ends_conversation=ends, booked=booked,
            stages_before=stages_before, stages_after=frozenset(state.stages))
        components = rewards.immediate_components(user_turn, self.config.reward)
        immediate = rewards.immediate_reward(components)
        self.immediate_rewards.append(immediate)
        if not state.done and state.turn >= self.config.max_conversation_length:
            state.truncated = True
        outcome = self._finish() if state.done or state.truncated else None
        reward = rewards.turn_reward(self.config.reward, immediate)
        return EnvironmentStep(state, reward, state.done, state.truncated, components, outcome, error, calls)

    def _finish(self) -> EpisodeOutcome:
        result: VerificationResult = self.verifier.verify(self.state.history, self.database.path, self.state.objective)
        hallucinations = len(result.hallucinations)
        return EpisodeOutcome(
            verification=result,
            verifier_score=result.score,
            success=result.success,
            terminal_reward=rewards.terminal_reward(self.config.reward, result.score, hallucinations),
            episode_reward=rewards.episode_return(self.config.reward, result.score, hallucinations,
                                                  self.immediate_rewards),
            hallucinations=tuple((str(h.kind), h.reason) for h in result.hallucinations),
            hallucination_turns=tuple(sum(m.role == "user" for m in self.state.history[:h.claim.message_index])
                                      for h in result.hallucinations),
            injected=tuple(str(h.kind) for h in self.injected),
            persona=self.state.persona.name if self.state.persona else None,
            attack_moves=tuple(tuple(moves) for moves in self.attack_moves),
        )

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
        """The complete Markovian state string: objective, booking context, turn, recent history and the prompt.

        At most ``history_window`` recent messages. With ``max_state_tokens`` the state is fitted to the budget so
        that the policy's left truncation (``agents.auto_user.generation.encode_query``) never reaches its head
        (the objective, persona, booking context and turn lines). In this order, each step only if still too long:

        1. whole history messages are dropped, oldest first, down to the latest one;
        2. the latest message is shortened in its middle (marked ``CLIP_MARKER``), its start and end kept;
        3. last resort, when the fixed part alone is over budget (an enormous objective text): the objective text
           is shortened in its middle, its line kept, leaving a quarter of the budget to the latest message.
        """
        state = state or self.state
        recent = list(state.history[-self.config.history_window:])
        text = self._render(state, recent)
        budget = self.max_state_tokens
        if budget is None or self.count_tokens(text) <= budget:
            return text
        while len(recent) > 1:
            recent.pop(0)
            text = self._render(state, recent)
            if self.count_tokens(text) <= budget:
                return text
        latest = recent[-1] if recent else None
        empty = [Message(latest.role, "")] if latest else []  # the fixed part: every line but the message's text
        objective = state.objective.text
        if self.count_tokens(self._render(state, empty)) > budget:
            def shell(clipped: str) -> str:
                return self._render(state, empty, clipped)

            room = budget // 4 if latest and latest.text else 0
            # None: not even the bare objective line fits beside the room, so the message gets none.
            objective = self._longest_fitting(objective, shell, budget - room)
            if objective is None:
                objective = self._longest_fitting(state.objective.text, shell, budget) or ""
        if latest is None:
            return self._render(state, [], objective)
        fitted = self._longest_fitting(
            latest.text, lambda clipped: self._render(state, [Message(latest.role, clipped)], objective), budget)
        return self._render(state, [Message(latest.role, fitted or "")], objective)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as the policy encodes a state (no special tokens added)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def policy_view(self, text: str) -> str:
        """What the policy receives of the state string ``text``: all of it when it fits ``max_state_tokens``,
        otherwise the decoded tokens that the policy's left truncation (``encode_query``) keeps."""
        if self.max_state_tokens is None or self.count_tokens(text) <= self.max_state_tokens:
            return text
        # Imported here: it loads torch and transformers, which only an environment with a policy tokenizer needs.
        from agents.auto_user.generation import encode_query

        return self.tokenizer.decode(encode_query(self.tokenizer, text, self.max_state_tokens),
                                     skip_special_tokens=False)

    def state_is_complete(self, text: str) -> bool:
        """Whether the policy's view of ``text`` (after its left truncation to ``max_state_tokens``) holds the whole
        objective, the persona, the start of the latest message and the turn (where the template shows one)."""
        template = self.config.plain_template if self.config.state_template == "plain" else self.config.system_template
        return state_is_complete(self.state, self.policy_view(text), shows_turn="{turn}" in template)

    def _longest_fitting(self, text: str, render: Callable[[str], str], limit: int) -> str | None:
        """The longest middle-shortened form of ``text`` whose ``render`` fits ``limit`` tokens (None: not even "").

        Binary search on the kept length: tokens grow with the characters kept, so ~log2(len(text)) renders.
        """
        best: str | None = None
        low, high = 0, len(text)
        while low <= high:
            keep = (low + high) // 2
            clipped = _clip_middle(text, keep)
            if self.count_tokens(render(clipped)) <= limit:
                best, low = clipped, keep + 1
            else:
                high = keep - 1
        return best

    def _render(self, state: ConversationState, recent: list[Message], objective_text: str | None = None) -> str:
        context = state.booking_context
        parts = [context[key] for key in ("search", "booking") if key in context]
        if "booking_status" in context:
            parts.append(f"status {context['booking_status']} (code {context['booking_code']})")
        note = goal_check_note(state, self.today) if self.config.goal_check else ""
        on_last_line = self.config.goal_check_placement == "last_line"
        if note and not on_last_line:
            parts.append(note)
        last_line = f"Goal check: {note}" if note and on_last_line else ""
        context_text = "; ".join(parts) if parts else "nothing searched or booked yet"
        objective = state.objective.text if objective_text is None else objective_text
        objective += f"\nGoal: {state.objective.summary()}" if self.config.objective_summary else ""
        objective += f"\nPersona: {state.persona.line}" if state.persona else ""
        fields = {"objective": objective, "context": context_text, "turn": state.turn + 1,
                  "max_turns": self.config.max_conversation_length}
        return self._render_fields(fields, recent, last_line)

    def _render_fields(self, fields: dict[str, Any], recent: list[Message], last_line: str = "") -> str:
        """The template filled in; ``last_line`` (the goal check's, or "") follows the latest message."""
        if self.config.state_template == "chat":
            messages = [{"role": "system", "content": self.config.system_template.format(**fields)}]
            messages += [{"role": "assistant" if m.role == "user" else "user", "content": m.text} for m in recent]
            if messages[-1]["role"] != "user":
                messages.append({"role": "user", "content": "(waiting for your message)"})
            if last_line:
                messages[-1]["content"] += f"\n\n{last_line}"
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        labels = {"agent": "Agent: ", "user": "User: "} if self.config.speaker_labels else {"agent": "", "user": ""}
        history = self.config.turn_separator.join(f"{labels[m.role]}{m.text}" for m in recent) or "(none yet)"
        history += f"\n{last_line}" if last_line else ""
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


def state_is_complete(state: ConversationState, text: str, shows_turn: bool = True) -> bool:
    """Whether a state string carries the objective (and persona), the start of the latest history message and (when
    its template ``shows_turn``) the turn number."""
    latest = state.history[-1].text if state.history else ""
    persona = state.persona.line if state.persona else ""
    return (state.objective.text in text and persona in text and latest[:100] in text
            and (not shows_turn or f"Turn: {state.turn + 1}" in text))


def _clip_middle(text: str, length: int) -> str:
    """``text`` cut to about ``length`` characters by replacing its middle with ``CLIP_MARKER``; the start (two
    thirds) and the end survive, so a reader sees both what the message opened with and what it asked last."""
    if len(text) <= length:
        return text
    if length <= 0:
        return ""
    head = length - length // 3
    tail = length - head
    return text[:head] + CLIP_MARKER + (text[-tail:] if tail else "")
