"""The fixed booking agent (never trained): rule-based by default, or any OpenAI-compatible LLM."""

from datetime import date

from agents.booking.base import (
    HALLUCINATION_KINDS,
    AgentTurn,
    BookingAgent,
    BookingAgentConfig,
    HallucinationKind,
    InjectedHallucination,
    Message,
    OpenAIAgentConfig,
    RuleAgentConfig,
)
from agents.booking.rule_agent import RuleBookingAgent

__all__ = ["HALLUCINATION_KINDS", "AgentTurn", "BookingAgent", "BookingAgentConfig", "HallucinationKind",
           "InjectedHallucination", "Message", "OpenAIAgentConfig", "RuleAgentConfig", "RuleBookingAgent",
           "make_booking_agent"]


def make_booking_agent(config: BookingAgentConfig, tools, today: date) -> BookingAgent:
    """The agent for ``config.backend`` over a tool client; ``today`` is the database's today."""
    if config.backend == "openai":
        from agents.booking.openai_agent import OpenAIBookingAgent

        return OpenAIBookingAgent(tools, today, config.openai)
    return RuleBookingAgent(tools, today, config.rule)
