"""Expert iteration (``training/expert_iteration.py``): a round plays an auto-user through the real environment and
keeps, as demonstration rows, the user turns of the conversations the verifier passes, each with the state string
the auto-user was given. Here the auto-user's ``generate`` is a reactive demonstrator behind real token tensors (a
tiny model rarely books), or a babbler that never books; the stage's wiring into ``train_ppo.py`` is tested in
``tests/test_warm_start_stage.py``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from agents.auto_user.generation import encode_query
from agents.auto_user.models import load_tokenizer_checked, resolve_model
from database import FlightDatabase
from environment.conversation import ConversationState
from environment.demonstrators import ReactiveDemonstrator
from environment.objectives import load_objectives
from tests.conftest import REPO
from training.config import load_config
from training.demonstrations import ROW_COLUMNS, training_objectives
from training.expert_iteration import collect_round


@pytest.fixture(scope="module")
def setup(template_db: Path, tiny_model_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("expert-iteration")
    config = load_config(REPO / "configs" / "tiny_test.yaml", [
        f"environment.db_path={template_db}", f"environment.workdir={workdir}",
        f"model.model_cache_dir={tiny_model_cache}", "ppo.num_envs=3", "environment.max_conversation_length=10"])
    tokenizer = load_tokenizer_checked(resolve_model(config.model.base_model, config.model.model_cache_dir))
    return config, tokenizer


def states_to_users(config, tokenizer, envs_of_state, answer):
    """A ``generate`` over state strings, as an auto-user's: real query/response token tensors, ``answer(state)``
    as the message."""
    def generate(states: list[str]):
        texts = [answer(envs_of_state(state)) for state in states]
        queries = [encode_query(tokenizer, state, config.model.max_query_length) for state in states]
        responses = [torch.tensor(tokenizer(" " + text, add_special_tokens=False)["input_ids"]) for text in texts]
        return queries, responses, texts
    return generate


def record_states(monkeypatch: pytest.MonkeyPatch) -> dict[str, ConversationState]:
    """Every state string the environments hand out from now on, with the state it describes."""
    import environment.conversation as conversation

    seen: dict[str, ConversationState] = {}
    original = conversation.BookingConversationEnvironment.format_state

    def recording(self, state=None):  # noqa: ANN001, ANN202 - format_state's signature
        text = original(self, state)
        seen[text] = state or self.state
        return text

    monkeypatch.setattr(conversation.BookingConversationEnvironment, "format_state", recording)
    return seen


def test_a_round_keeps_the_verified_conversations_with_the_states_the_user_saw(setup, monkeypatch) -> None:
    config, tokenizer = setup
    seen = record_states(monkeypatch)
    with FlightDatabase(config.environment.db_path, read_only=True) as db:
        today = db.today()

    def answer(state: ConversationState) -> str:
        return ReactiveDemonstrator(today, "chatty", seed=state.turn)(state)

    objectives = training_objectives(config)
    result = collect_round(config, states_to_users(config, tokenizer, seen.__getitem__, answer), tokenizer,
                           objectives, episodes=9, seed=3, round_index=2)
    assert result.played == 9 and result.kept >= 6, result.summary()  # the demonstrator books nearly always
    assert sum(result.kept_per_kind.values()) == result.kept
    assert result.rows and all(set(row) == set(ROW_COLUMNS) for row in result.rows)
    assert {row["demonstrator"] for row in result.rows} == {"policy round 2"}
    for row in result.rows:
        state = seen[row["prompt"]]  # the exact string the user was given
        assert row["objective_id"] == state.objective.objective_id
        assert re.search(rf"\bTurn: {row['turn']}\b", row["prompt"]), row["prompt"][:300]
        assert row["completion"] == " ".join(row["completion"].split()) and row["completion"]
    # One row per user turn of each kept conversation, turns 1..n in order.
    episodes: dict[tuple, list[int]] = {}
    for row in result.rows:
        episodes.setdefault((row["objective_id"], row["episode_seed"]), []).append(row["turn"])
    assert len(episodes) == result.kept and all(turns == list(range(1, len(turns) + 1))
                                                for turns in episodes.values())
    held_out = {o.objective_id for o in load_objectives(config.environment, config.evaluation.eval_objectives_file)[1]}
    assert not held_out & {row["objective_id"] for row in result.rows}


def test_a_round_of_a_user_who_never_books_keeps_nothing(setup) -> None:
    config, tokenizer = setup
    babble = states_to_users(config, tokenizer, lambda state: None, lambda _: "hmm let me think about it")
    result = collect_round(config, babble, tokenizer, training_objectives(config), episodes=4, seed=0, round_index=1)
    assert result.played == 4 and result.kept == 0 and result.rows == []


def test_the_stage_trains_each_round_on_the_demonstrations_and_the_kept_rows(setup, tmp_path, monkeypatch) -> None:
    """``prepare_warm_start`` with one round: the round's sampler is the reactive demonstrator (as above) instead of
    the tiny policy, so that the round keeps rows; the round's policy is fine-tuned on demonstrations + those rows,
    PPO starts from it, and a second call reuses everything."""
    import dataclasses

    import training.expert_iteration as expert_iteration
    from training.warm_start import METRICS_FILE, load_demonstrations
    from training.warm_start_stage import prepare_warm_start

    config, tokenizer = setup
    config = dataclasses.replace(config, warm_start=dataclasses.replace(
        config.warm_start, enabled=True, demonstration_episodes=4, max_steps=2, eval_fraction=0.0,
        expert_iteration_rounds=1, expert_iteration_episodes=3))
    with FlightDatabase(config.environment.db_path, read_only=True) as db:
        today = db.today()
    sampled_from = []

    def demonstrator_round(config, policy_dir, objectives, episodes, seed, round_index):
        sampled_from.append(policy_dir)
        generate = states_to_users(config, tokenizer, record_states(monkeypatch).__getitem__,
                                   lambda state: ReactiveDemonstrator(today, "brief", seed=state.turn)(state))
        return collect_round(config, generate, tokenizer, objectives, episodes, seed, round_index)

    monkeypatch.setattr(expert_iteration, "sample_policy", demonstrator_round)
    model_path = resolve_model(config.model.base_model, config.model.model_cache_dir)
    outcome = prepare_warm_start(config, model_path, tmp_path, "cpu")
    root = tmp_path / "warm_start"
    round_dir = root / "expert_iteration" / "round-1"
    assert sampled_from == [root / "policy"]  # round 1 samples the supervised step's policy
    assert outcome.policy_dir == round_dir / "policy"
    demonstrations, kept = load_demonstrations(root / "demonstrations"), load_demonstrations(round_dir / "samples")
    assert len(kept) > 0 and set(kept["demonstrator"]) == {"policy round 1"}
    metrics = json.loads((round_dir / "policy" / METRICS_FILE).read_text())
    assert metrics["rows"] == len(demonstrations) + len(kept)
    assert metrics["expert_iteration"][0]["kept"] >= 1 and metrics["expert_iteration"][0]["episodes"] == 3
    assert outcome.reference_dir == root / "merged"
    stamp = (round_dir / "policy" / "adapter_model.safetensors").stat().st_mtime_ns
    again = prepare_warm_start(config, model_path, tmp_path, "cpu")  # everything reused: no sampling, no training
    assert sampled_from == [root / "policy"] and again.policy_dir == outcome.policy_dir
    assert (round_dir / "policy" / "adapter_model.safetensors").stat().st_mtime_ns == stamp
