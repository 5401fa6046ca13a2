"""Issue 25, item 1: the state the policy receives never loses its head (objective, persona, booking context, turn).

Checked on the tokens the policy actually gets: ``encode_query`` truncates every prompt from the left to
``model.max_query_length``, so anything of the head that does not fit would be cut silently. Long, wordy conversations
(60-word user turns, an LLM-like agent's multi-line 2,000+-character replies) run under every shipped config and every
history window from 1 to 4, with the tiny Llama tokenizer (byte-level BPE with few merges: many tokens per word,
so the budget is tight).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path

import pytest

from agents.auto_user.generation import encode_query
from agents.auto_user.models import load_tokenizer, resolve_model
from agents.booking import Message
from environment.config import EnvironmentConfig
from environment.conversation import CLIP_MARKER, BookingConversationEnvironment, state_is_complete
from environment.objectives import load_objectives
from tests.conftest import REPO
from training.config import load_config

CONFIGS = sorted(path.name for path in (REPO / "configs").glob("*.yaml"))
WINDOWS = [1, 2, 3, 4]
WORDS = ("well I was thinking that maybe we could look at the options again because my family really wants to travel "
         "together and I am not completely sure about the exact dates yet so please bear with me").split()


def long_agent_reply(rule_reply: str, rng: random.Random) -> str:
    """What an LLM agent writes: the rule agent's answer buried in 2,000+ characters over many lines."""
    lines = [f"Option {i + 1}: a {rng.choice(['morning', 'evening'])} departure with a comfortable seat, free "
             f"snacks, flexible changes and our loyalty points, subject to availability and fare rules."
             for i in range(18)]
    return "Thank you for your patience.\n" + "\n".join(lines) + f"\n{rule_reply}"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    return load_tokenizer(resolve_model("tiny-llama", tmp_path_factory.mktemp("models")))


@pytest.fixture(scope="module")
def objective(template_db: Path):
    config = EnvironmentConfig(db_path=str(template_db), num_objectives=20)
    return next(o for o in load_objectives(config)[0] if o.feasible)


def shipped(name: str, template_db: Path, workdir: Path, history_window: int):
    """A shipped config through the project's loader, pointed at the test database (and not at a run it starts
    from: fuzzing.yaml's model.init_from names a directory that a training run makes)."""
    return load_config(REPO / "configs" / name, [
        f"environment.db_path={template_db}", f"environment.workdir={workdir}", "environment.agent.transport=inprocess",
        f"environment.history_window={history_window}", "model.init_from=null"])


def policy_sees(tokenizer, state: str, budget: int) -> str:
    """The policy's prompt: the state's tokens after its left truncation to max_query_length, decoded."""
    return tokenizer.decode(encode_query(tokenizer, state, budget))


async def wordy_conversation(config, tokenizer, objective, rng: random.Random,
                             seed: int) -> list[tuple[str, int, bool]]:
    """One episode under ``config``: per user turn, the fitted state, the tokens the unfitted state would have and
    whether the environment reports the state complete."""
    budget = config.model.max_query_length
    env = BookingConversationEnvironment(config.environment, tokenizer=tokenizer, max_state_tokens=budget)
    unfitted = BookingConversationEnvironment(config.environment, worker_id=1, tokenizer=tokenizer)
    env.reset(objective=objective, seed=seed)
    seen = []
    for _ in range(config.environment.max_conversation_length):
        state = env.format_state()
        seen.append((state, env.count_tokens(unfitted.format_state(env.state)), env.state_is_complete(state)))
        words = " ".join(rng.choice(WORDS) for _ in range(60))
        step = await env.step(f"I need to fly from {objective.origin_city} to {objective.destination_city}, {words}")
        if step.done or step.truncated:
            break
        if env.state.history[-1].role == "agent" and rng.random() < 0.5:  # otherwise the rule agent's own reply
            env.state.history[-1] = Message("agent", long_agent_reply(env.state.history[-1].text, rng))
    await env.aclose()
    await unfitted.aclose()
    return seen


@pytest.mark.parametrize("name", CONFIGS)
def test_wordy_conversations_never_lose_the_head(name: str, template_db: Path, tmp_path: Path, tokenizer,
                                                 objective) -> None:
    rng = random.Random(name)
    checked, overflowing, clipped, dropped = 0, 0, 0, 0
    for window in WINDOWS:
        config = shipped(name, template_db, tmp_path / f"w{window}", window)
        budget = config.model.max_query_length
        shows_turn = "{turn}" in (config.environment.plain_template if config.environment.state_template == "plain"
                                  else config.environment.system_template)
        for state, untrimmed, complete in asyncio.run(wordy_conversation(config, tokenizer, objective, rng, window)):
            sees = policy_sees(tokenizer, state, budget)
            assert len(tokenizer(state, add_special_tokens=False)["input_ids"]) <= budget
            checked += 1
            overflowing += untrimmed > budget
            clipped += CLIP_MARKER in state
            dropped += untrimmed > budget and CLIP_MARKER not in state
            assert objective.text in sees, (name, window, sees[:300])
            if shows_turn:
                assert "Turn: " in sees and "Booking context:" in sees, (name, window, sees[:300])
            assert complete, (name, window, sees[:300])
    assert checked >= len(WINDOWS) * 4
    assert overflowing >= checked // 4  # the conversations really overflow the budget
    assert clipped > 0 and dropped > 0  # some states fit by dropping old messages, others needed a reply shortened


def _env_with_history(template_db: Path, tmp_path: Path, tokenizer, budget: int | None,
                      **settings) -> BookingConversationEnvironment:
    config = EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path), history_window=4, **settings)
    return BookingConversationEnvironment(config, tokenizer=tokenizer, max_state_tokens=budget)


@pytest.mark.parametrize("template", ["plain", "chat"])
def test_a_long_agent_reply_is_shortened_in_its_middle_before_anything_else(template: str, template_db: Path,
                                                                            tmp_path: Path, tokenizer,
                                                                            objective) -> None:
    env = _env_with_history(template_db, tmp_path, tokenizer, 300, state_template=template)
    env.reset(objective=objective, seed=0)
    reply = "START of the reply.\n" + "We have many policies about baggage and seats.\n" * 60 + "What is your name?"
    env.state.history.extend([Message("user", "Hello " * 50), Message("agent", reply)])
    state = env.format_state()
    sees = policy_sees(tokenizer, state, 300)
    assert env.count_tokens(state) <= 300 and sees == state
    assert objective.text in state and "Booking context:" in state and "Turn: 1 of" in state
    assert CLIP_MARKER in state and "START of the reply." in state and "What is your name?" in state
    assert "Hello Hello" not in state  # the older message went first
    assert env.state_is_complete(state)
    asyncio.run(env.aclose())


@pytest.mark.parametrize("template", ["plain", "chat"])
def test_an_enormous_objective_is_shortened_but_keeps_its_line(template: str, template_db: Path, tmp_path: Path,
                                                                tokenizer, objective) -> None:
    """The last resort: the fixed part alone exceeds the budget. Without fitting, the left truncation would cut the
    objective line, the persona and everything above the history."""
    env = _env_with_history(template_db, tmp_path, tokenizer, 300, state_template=template, personas=["hurried"])
    huge = dataclasses.replace(objective, text=f"{objective.text} " + "I also have many wishes. " * 200 + "THE END.")
    env.reset(objective=huge, seed=0)
    env.state.history.append(Message("agent", "START of the reply. " + "Our seats are comfortable. " * 40))
    state = env.format_state()
    sees = policy_sees(tokenizer, state, 300)
    assert env.count_tokens(state) <= 300 and sees == state
    assert f"Objective: {objective.text[:40]}" in state and CLIP_MARKER in state and "THE END." in state
    assert f"Persona: {env.state.persona.line}" in state and "Booking context:" in state and "Turn: 1 of" in state
    assert "START of the reply." in state  # a quarter of the budget stays for the agent's message
    assert not env.state_is_complete(state)  # the policy did not see the whole objective, and the metric says so
    asyncio.run(env.aclose())


def test_completeness_is_measured_on_the_tokens_the_policy_gets(template_db: Path, tmp_path: Path, tokenizer,
                                                                 objective) -> None:
    """An unfitted state longer than the budget carries everything as a string, but the policy's left truncation cuts
    its head: state_completeness must count it as incomplete."""
    unlimited = _env_with_history(template_db, tmp_path, tokenizer, None)
    fitted = _env_with_history(template_db, tmp_path, tokenizer, 300)
    for env in (unlimited, fitted):
        env.reset(objective=objective, seed=0)
        env.state.history.extend([Message("user", "I would like to fly soon. " * 20),
                                  Message("agent", "Let me check our flights for you. " * 40)])
    overlong = unlimited.format_state()
    assert fitted.count_tokens(overlong) > 300
    assert state_is_complete(fitted.state, overlong)  # the string has it all...
    assert objective.text not in policy_sees(tokenizer, overlong, 300)  # ...the policy would not
    assert not fitted.state_is_complete(overlong)
    assert fitted.state_is_complete(fitted.format_state())
    for env in (unlimited, fitted):
        asyncio.run(env.aclose())


def test_a_budget_below_the_template_itself_is_refused(template_db: Path, tmp_path: Path, tokenizer) -> None:
    with pytest.raises(ValueError, match="max_state_tokens 20 cannot hold the state template"):
        _env_with_history(template_db, tmp_path, tokenizer, 20)
