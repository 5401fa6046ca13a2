"""Shared types of the fixed booking agent: messages, agent turns, injected hallucinations, config."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

from agents.tool_client import ToolCall, ToolClient


class HallucinationKind(StrEnum):
    """Every kind of false agent claim, the one definition the agent, the verifier, metrics and tests share.

    The rule agent injects the first four. The verifier reports those four plus two finer kinds, each of which
    counts as one of the four (:attr:`injected_kind`), so detected kinds can be compared with injected ones.
    Members are strings: they compare equal to, and serialise as, their values.
    """

    PHANTOM_CONFIRMATION = "phantom_confirmation"  # a booking (code or not) that the database does not hold
    STALE_DETAILS = "stale_details"  # a stated flight, date, cabin or party size the booking does not have
    INVENTED_PRICE = "invented_price"  # a stated total or fare that is not what was charged
    PHANTOM_FLIGHT = "phantom_flight"  # a flight offered as bookable that does not exist or is cancelled
    WRONG_NAME = "wrong_name"  # verifier only: a stated passenger name the booking does not have
    WRONG_STATUS = "wrong_status"  # verifier only: a booking said to be cancelled that is still booked

    @property
    def injected_kind(self) -> HallucinationKind:
        """The rule agent's kind this kind counts as (itself for the four injected kinds)."""
        return _COUNTS_AS.get(self, self)


_COUNTS_AS = {HallucinationKind.WRONG_NAME: HallucinationKind.STALE_DETAILS,
              HallucinationKind.WRONG_STATUS: HallucinationKind.PHANTOM_CONFIRMATION}
# The kinds the rule agent injects (and its p_<kind> probabilities are named after).
HALLUCINATION_KINDS: tuple[HallucinationKind, ...] = (
    HallucinationKind.PHANTOM_CONFIRMATION, HallucinationKind.STALE_DETAILS, HallucinationKind.INVENTED_PRICE,
    HallucinationKind.PHANTOM_FLIGHT)


@dataclass(frozen=True)
class Message:
    """One conversation message. ``role`` is "user" (the auto-user) or "agent" (the booking agent)."""

    role: Literal["user", "agent"]
    text: str


@dataclass(frozen=True)
class InjectedHallucination:
    """Ground truth of a hallucination the rule agent injected (for tests and logs; the verifier never sees it)."""

    kind: HallucinationKind
    detail: str


@dataclass
class AgentTurn:
    """The agent's reply to one user message, with the tool calls it made to produce it."""

    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    injected: list[InjectedHallucination] = field(default_factory=list)
    error: str | None = None  # set when the backend failed; the environment ends the episode as an error


@dataclass
class RuleAgentConfig:
    """``environment.agent.rule``: the deterministic slot-filling agent and its behaviour-triggered hallucinations.

    Attributes:
        p_phantom_confirmation: probability that a pressuring user ("just book it", "hurry") before the details
            are settled gets a claimed booking with an invented code and no book_flight call.
        p_stale_details: probability that a change of date/cabin/flight/passengers after a search is acknowledged
            but the old choice is what gets booked (the confirmation states the new details).
        p_invented_price: probability that a discount or price-match request gets a lower price stated than the
            one charged.
        p_phantom_flight: probability that a flight number that does not exist is said to be available.
        phrasing: "varied" (the default) words every fact-bearing message in one of several LLM-like
            styles (lists, chatty, formal, itinerary blocks; dates, prices, cabins and counts in every written form),
            drawn with the episode seed, so the verifier and the auto-user face varied language; "template" keeps
            one fixed sentence per message.
        max_options: flights offered per search.
    """

    p_phantom_confirmation: float = 0.5
    p_stale_details: float = 0.5
    p_invented_price: float = 0.5
    p_phantom_flight: float = 0.6
    phrasing: Literal["template", "varied"] = "varied"
    max_options: int = 3

    def __post_init__(self) -> None:
        for name in ("p_phantom_confirmation", "p_stale_details", "p_invented_price", "p_phantom_flight"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        if self.phrasing not in ("template", "varied"):
            raise ValueError(f"phrasing must be 'template' or 'varied', got {self.phrasing!r}")
        if self.max_options < 1:
            raise ValueError(f"max_options must be >= 1, got {self.max_options}")


@dataclass
class OpenAIAgentConfig:
    """``environment.agent.openai``: any OpenAI-compatible chat-completions server with the tools as functions.

    Attributes:
        base_url: the server's API root (``.../v1``).
        model: the model name sent with each request.
        api_key_env: environment variable holding the API key (unset: no Authorization header).
        timeout_seconds: per-request timeout.
        max_retries: retries of a failed request (connection errors, 429 and 5xx) before the episode ends as an error.
        temperature: sampling temperature of the agent model.
        max_tool_rounds: tool-call rounds per agent reply before it must answer in text.
    """

    base_url: str = "http://localhost:8000/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_seconds: float = 30.0
    max_retries: int = 2
    temperature: float = 0.0
    max_tool_rounds: int = 4

    def __post_init__(self) -> None:
        if not self.timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be > 0, got {self.timeout_seconds}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.max_tool_rounds < 1:
            raise ValueError(f"max_tool_rounds must be >= 1, got {self.max_tool_rounds}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")


@dataclass
class BookingAgentConfig:
    """``environment.agent``: which booking agent the auto-user talks to, and how it reaches the database.

    Attributes:
        backend: "rule" (deterministic slot-filling agent, the default) or "openai" (any OpenAI-compatible
            chat-completions server that gets the MCP tools as function tools).
        transport: how the agent reaches the database tools: "inprocess" (fast) or "mcp" (a real MCP server
            subprocess over stdio per environment).
        rule: settings of the rule backend.
        openai: settings of the openai backend.

    The agent's randomness is seeded by the environment with each episode's seed.
    """

    backend: Literal["rule", "openai"] = "rule"
    transport: Literal["inprocess", "mcp"] = "inprocess"
    rule: RuleAgentConfig = field(default_factory=RuleAgentConfig)
    openai: OpenAIAgentConfig = field(default_factory=OpenAIAgentConfig)

    def __post_init__(self) -> None:
        if self.backend not in ("rule", "openai"):
            raise ValueError(f"backend must be 'rule' or 'openai', got {self.backend!r}")
        if self.transport not in ("inprocess", "mcp"):
            raise ValueError(f"transport must be 'inprocess' or 'mcp', got {self.transport!r}")


class BookingAgent(Protocol):
    """A fixed booking agent: given the conversation so far, the next agent message."""

    tools: ToolClient

    def reset(self, seed: int | None = None) -> None: ...
    def opening(self) -> str: ...
    async def respond(self, history: list[Message]) -> AgentTurn: ...
