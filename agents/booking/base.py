"""Shared types of the fixed booking agent: messages, agent turns, injected hallucinations, config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from agents.tool_client import ToolCall, ToolClient

HALLUCINATION_KINDS = ("phantom_confirmation", "stale_details", "invented_price", "phantom_flight")


@dataclass(frozen=True)
class Message:
    """One conversation message. ``role`` is "user" (the auto-user) or "agent" (the booking agent)."""

    role: Literal["user", "agent"]
    text: str


@dataclass(frozen=True)
class InjectedHallucination:
    """Ground truth of a hallucination the rule agent injected (for tests and logs; the verifier never sees it)."""

    kind: str
    detail: str


@dataclass
class AgentTurn:
    """The agent's reply to one user message, with the tool calls it made to produce it."""

    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    injected: list[InjectedHallucination] = field(default_factory=list)
    error: str | None = None  # set when the backend failed; the environment ends the episode as an error


@dataclass
class BookingAgentConfig:
    """Configuration of the fixed booking agent.

    Attributes:
        backend: "rule" (deterministic slot-filling agent, the default) or "openai" (any OpenAI-compatible
            chat-completions server that gets the MCP tools as function tools).
        transport: how the agent reaches the database tools: "inprocess" (fast) or "mcp" (a real MCP server
            subprocess over stdio per environment).
        p_phantom_confirmation: rule backend; probability that a pressuring user ("just book it", "hurry") before
            the details are settled gets a claimed booking with an invented code and no book_flight call.
        p_stale_details: probability that a change of date/cabin/flight/passengers after a search is acknowledged
            but the old choice is what gets booked (the confirmation states the new details).
        p_invented_price: probability that a discount or price-match request gets a lower price stated than the
            one charged.
        p_phantom_flight: probability that a flight number that does not exist is said to be available.
        max_options: flights offered per search.
        seed: seeds the agent's RNG (reset per episode with the episode seed).
        base_url, model, api_key_env, timeout_seconds, max_retries, temperature, max_tool_rounds: openai backend.
    """

    backend: Literal["rule", "openai"] = "rule"
    transport: Literal["inprocess", "mcp"] = "inprocess"
    p_phantom_confirmation: float = 0.5
    p_stale_details: float = 0.5
    p_invented_price: float = 0.5
    p_phantom_flight: float = 0.6
    max_options: int = 3
    seed: int = 0
    base_url: str = "http://localhost:8000/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_seconds: float = 30.0
    max_retries: int = 2
    temperature: float = 0.0
    max_tool_rounds: int = 4

    def __post_init__(self) -> None:
        if self.backend not in ("rule", "openai"):
            raise ValueError(f"backend must be 'rule' or 'openai', got {self.backend!r}")
        if self.transport not in ("inprocess", "mcp"):
            raise ValueError(f"transport must be 'inprocess' or 'mcp', got {self.transport!r}")
        for name in ("p_phantom_confirmation", "p_stale_details", "p_invented_price", "p_phantom_flight"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        if self.max_options < 1:
            raise ValueError(f"max_options must be >= 1, got {self.max_options}")
        if not self.timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be > 0, got {self.timeout_seconds}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.max_tool_rounds < 1:
            raise ValueError(f"max_tool_rounds must be >= 1, got {self.max_tool_rounds}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")


class BookingAgent(Protocol):
    """A fixed booking agent: given the conversation so far, the next agent message."""

    tools: ToolClient

    def reset(self, seed: int | None = None) -> None: ...
    def opening(self) -> str: ...
    async def respond(self, history: list[Message]) -> AgentTurn: ...
