"""Megabyte messages: every free-text parser is linear and bounded, and the environment caps agent replies."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agents import nlu
from agents.booking import AgentTurn, BookingAgentConfig
from environment.config import EnvironmentConfig
from environment.conversation import BookingConversationEnvironment
from environment.objectives import Objective, generate_objectives

MEGABYTE = 1_000_000
TODAY = date(2026, 12, 1)
AIRPORTS = {"boston": "BOS", "bos": "BOS", "new york": "JFK", "jfk": "JFK", "san francisco": "SFO", "sfo": "SFO"}
PARSERS: dict[str, Callable[[str], object]] = {
    "asks_for_name": nlu.asks_for_name,
    "parse_date": lambda text: nlu.parse_date(text, TODAY),
    "parse_cabin": nlu.parse_cabin,
    "parse_passengers": nlu.parse_passengers,
    "parse_name": nlu.parse_name,
    "parse_bare_name": lambda text: nlu.parse_bare_name(text, AIRPORTS),
    "parse_message": lambda text: nlu.parse_message(text, AIRPORTS, TODAY, answering=text),
}


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in the main thread after ``seconds`` (the regex engine checks for signals), so a
    quadratic parser fails the test instead of hanging the suite."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# A short unit repeated to a megabyte: the shapes that make backtracking regexes slow (no "?", long runs of one
# character, trigger words followed by padding, ...). Units drawn from the characters the patterns care about.
units = st.one_of(
    st.sampled_from(["a", " ", ".", "1", "1/", "1-", "'", "A-", "Ann ", "dec ", "in ", "my name is ", "under  ",
                     "name", "What is the name", "two ", "first "]),
    st.text(alphabet="aAnN .?!:'-/1 \n\tdecmyisunr", min_size=1, max_size=12),
)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(unit=units, parser=st.sampled_from(sorted(PARSERS)))
def test_every_parser_reads_a_megabyte_in_well_under_a_second(unit: str, parser: str) -> None:
    text = (unit * (MEGABYTE // len(unit) + 1))[:MEGABYTE]
    start = time.perf_counter()
    with time_limit(5.0):
        PARSERS[parser](text)
    assert time.perf_counter() - start < 0.5, (parser, unit)


def test_megabyte_without_a_question_mark_is_fast_and_long_questions_still_count() -> None:
    for parser in PARSERS.values():
        start = time.perf_counter()
        with time_limit(5.0):
            parser("a" * MEGABYTE)
        assert time.perf_counter() - start < 0.5
    assert nlu.asks_for_name("Thanks. " * 100 + "Under what name should I book it?")
    assert not nlu.asks_for_name("Your name is on the booking. Anything else?")


class _VerboseAgent:
    """A booking agent (as an LLM backend might be) whose every message is two megabytes without a question mark."""

    def __init__(self, tools: object):
        self.tools = tools

    def reset(self, seed: int | None = None) -> None:
        pass

    def opening(self) -> str:
        return "Hello " * 400_000

    async def respond(self, history: list) -> AgentTurn:
        return AgentTurn(text="Let me look into that for you " * 70_000)


def test_environment_caps_agent_text_so_a_huge_reply_cannot_stall_a_run(template_db: Path, tmp_path: Path) -> None:
    objective = Objective.from_dict(generate_objectives(template_db, 5, seed=0)[0])
    config = EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path), max_conversation_length=4,
                               agent=BookingAgentConfig(transport="inprocess"))
    env = BookingConversationEnvironment(config)
    env.agent = _VerboseAgent(env.tools)

    async def run() -> None:
        env.reset(objective=objective, seed=0)
        for message in ("Hi, I need a flight from Boston to Denver.", "Ann Lee, two passengers please."):
            await env.step(message)  # each parses the agent's previous (huge) reply
        await env.aclose()

    start = time.perf_counter()
    with time_limit(20.0):
        asyncio.run(run())
    assert time.perf_counter() - start < 3.0
    agent_messages = [message.text for message in env.state.history if message.role == "agent"]
    assert len(agent_messages) == 3 and all(len(text) <= 10_000 for text in agent_messages)  # of 2,000,000
