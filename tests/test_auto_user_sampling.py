"""Issue 25, item 2: ``AutoUserAgent`` used as the README shows (``get_action(env.format_state())`` in a loop) gives a
fresh message on each call, a whole conversation is reproducible from ``AutoUserConfig.seed``, and ``seed=`` replays
one message exactly. Sampling every call with the config's seed made a trained model answer a repeated agent question
with the same sentence every time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from agents.auto_user import AutoUserAgent, AutoUserConfig
from agents.auto_user.tiny_models import build_tiny_model
from agents.booking import Message
from environment.config import EnvironmentConfig
from environment.conversation import BookingConversationEnvironment
from environment.objectives import load_objectives
from training.ppo import ModelConfig, PolicyWithValueHead

TURNS = 8
QUESTION = "Could you tell me the full name of the passenger, please?"


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained-policy directory as training saves it (LoRA adapter on a tiny GPT-2, value head, policy_config.json),
    the adapter moved off its zero start so that it changes what the model samples."""
    root = tmp_path_factory.mktemp("auto-user-policy")
    base = build_tiny_model(root / "base", "gpt2", seed=0)
    policy = PolicyWithValueHead.from_config(ModelConfig(base_model=str(base), lora_r=8))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in policy.pretrained_model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
    policy.save_pretrained(root / "final_model")
    return root / "final_model"


@pytest.fixture(scope="module")
def repeated_question_state(policy_dir: Path, template_db: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The environment's state when the booking agent keeps asking the same question and the conversation does not
    move on: the policy is shown this very string again and again."""
    from agents.auto_user.models import load_tokenizer

    workdir = tmp_path_factory.mktemp("env")
    config = EnvironmentConfig(db_path=str(template_db), workdir=str(workdir), history_window=1, num_objectives=20)
    objective = load_objectives(config)[0][0]
    env = BookingConversationEnvironment(config, tokenizer=load_tokenizer(str(policy_dir)), max_state_tokens=256)
    env.reset(objective=objective, seed=0)
    env.state.history.extend([Message("user", "Hello"), Message("agent", QUESTION)] * 3)
    state = env.format_state()
    asyncio.run(env.aclose())
    assert QUESTION in state
    return state


def _agent(policy_dir: Path, seed: int = 0) -> AutoUserAgent:
    agent = AutoUserAgent(AutoUserConfig(model_name=str(policy_dir), max_new_tokens=8, seed=seed, device="cpu"))
    agent.initialize_model()
    return agent


def _conversation(agent: AutoUserAgent, state: str) -> list[str]:
    """The README's pattern, turn after turn, while the agent's question (so the state) stays the same."""

    async def run() -> list[str]:
        return [await agent.get_action(state) for _ in range(TURNS)]

    return asyncio.run(run())


def test_a_repeated_question_gets_a_fresh_answer_each_turn(policy_dir: Path, repeated_question_state: str) -> None:
    messages = _conversation(_agent(policy_dir), repeated_question_state)
    assert all(messages)
    assert len(set(messages)) == TURNS, messages


def test_the_same_seed_gives_the_same_conversation(policy_dir: Path, repeated_question_state: str) -> None:
    first = _conversation(_agent(policy_dir, seed=7), repeated_question_state)
    second = _conversation(_agent(policy_dir, seed=7), repeated_question_state)
    other = _conversation(_agent(policy_dir, seed=8), repeated_question_state)
    assert first == second
    assert other != first


def test_an_explicit_seed_replays_a_message_without_moving_the_stream(policy_dir: Path,
                                                                      repeated_question_state: str) -> None:
    state = repeated_question_state
    agent, twin = _agent(policy_dir, seed=3), _agent(policy_dir, seed=3)

    async def run() -> tuple[list[str], list[str]]:
        replays = [await agent.get_action(state, seed=123) for _ in range(3)]
        streamed = [await agent.get_action(state), await agent.get_action(state, seed=123),
                    await agent.get_action(state)]
        return replays, streamed

    replays, streamed = asyncio.run(run())
    assert replays[0] and replays == [replays[0]] * 3
    assert streamed[1] == replays[0]
    # the replays took nothing from the stream: the agent's own draws are the twin's first two
    assert [streamed[0], streamed[2]] == twin.get_actions([state]) + twin.get_actions([state])
    assert _agent(policy_dir, seed=99).get_actions([state], seed=123) == [replays[0]]


def test_concurrent_calls_are_reproducible(policy_dir: Path, repeated_question_state: str) -> None:
    """Calls gathered at once take their seeds in the order they were made and do not share one global seeding."""

    async def run(agent: AutoUserAgent) -> list[str]:
        return list(await asyncio.gather(*(agent.get_action(repeated_question_state) for _ in range(4))))

    concurrent = asyncio.run(run(_agent(policy_dir, seed=5)))
    assert concurrent == _conversation(_agent(policy_dir, seed=5), repeated_question_state)[:4]
