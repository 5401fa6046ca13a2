"""The fixed booking agent (never trained): rule-based by default, or any OpenAI-compatible LLM."""

from agents.booking.base import (
    HALLUCINATION_KINDS,
    AgentTurn,
    BookingAgent,
    BookingAgentConfig,
    HallucinationKind,
    InjectedHallucination,
    Message,
)
from agents.booking.rule_agent import RuleBookingAgent

__all__ = ["HALLUCINATION_KINDS", "AgentTurn", "BookingAgent", "BookingAgentConfig", "HallucinationKind",
           "InjectedHallucination", "Message", "RuleBookingAgent", "make_booking_agent"]


def make_booking_agent(config: BookingAgentConfig, tools, today=None) -> BookingAgent:
    """The agent for ``config.backend`` over a tool client."""
    if config.backend == "openai":
        from agents.booking.openai_agent import OpenAIBookingAgent

        return OpenAIBookingAgent(tools, config, today=today)
    return RuleBookingAgent(tools, config, today=today)
