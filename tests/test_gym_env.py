"""BookingGymEnv: Gymnasium API conformance and a scripted episode through the synchronous API."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from gymnasium.utils.env_checker import check_env

from environment import rewards
from environment.config import EnvironmentConfig
from environment.gym_env import CHARSET, BookingGymEnv, clip_middle, to_charset
from environment.objectives import Objective, generate_objectives
from environment.scripted_users import happy_path


@pytest.fixture(scope="module")
def objectives(template_db: Path) -> list[Objective]:
    return [Objective.from_dict(record) for record in generate_objectives(template_db, 20, seed=0)]


def make_env(template_db: Path, tmp_path: Path, objectives: list[Objective] | None) -> BookingGymEnv:
    config = EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path), max_conversation_length=10)
    return BookingGymEnv(config, objectives)


def test_passes_the_gymnasium_env_checker(template_db, tmp_path, objectives) -> None:
    # check_env samples random Text actions (up to 2000 random characters): the environment must take any
    # string as a user message, and seeded resets/steps must be deterministic (rule agent and codes are seeded).
    env = make_env(template_db, tmp_path, objectives)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env.unwrapped, skip_render_check=True)
        # The only expected complaint: no render modes to test without a spec (render is skipped anyway).
        assert not [w for w in caught if "render" not in str(w.message) and "spec" not in str(w.message)]
    finally:
        env.close()
    env.close()  # closing twice is allowed
    with pytest.raises(RuntimeError):
        env.step("hello")


def test_scripted_episode_books_and_rewards_add_up(template_db, tmp_path, objectives) -> None:
    objective = next(o for o in objectives if o.kind == "multi_passenger")
    env = make_env(template_db, tmp_path, objectives)
    try:
        obs, info = env.reset(seed=3, options={"objective": objective.to_dict()})  # a dict works as well
        assert obs in env.observation_space and objective.text in obs
        assert info["objective"]["objective_id"] == objective.objective_id
        total, immediates, terminated, truncated = 0.0, [], False, False
        for message in happy_path(objective):
            assert message in env.action_space
            obs, reward, terminated, truncated, info = env.step(message)
            assert isinstance(obs, str) and obs in env.observation_space and isinstance(reward, float)
            total += reward
            immediates.append(rewards.immediate_reward(info["reward_components"]))
            if terminated or truncated:
                break
    finally:
        env.close()

    assert terminated and not truncated
    assert info["success"] and info["hallucinations"] == [] and info["verifier_score"] == 1.0
    weights = env.config.reward
    assert info["terminal_reward"] == pytest.approx(weights.verifier_weight * info["verifier_score"])
    expected = weights.verifier_weight * info["verifier_score"] + weights.immediate_weight * sum(immediates)
    # One decomposition: the Gymnasium return, the environment's episode reward and training's undiscounted turn
    # credit are the same number, each immediate term counted once.
    assert total == pytest.approx(expected) == pytest.approx(info["episode_return"])
    assert info["episode_reward"] == pytest.approx(expected)


def test_default_objectives_and_seeded_resets(template_db, tmp_path) -> None:
    env = make_env(template_db, tmp_path, None)  # generates config.num_objectives from the database
    try:
        assert len(env.env.objectives) == env.config.num_objectives
        first, _ = env.reset(seed=11)
        again, _ = env.reset(seed=11)
        assert first == again
    finally:
        env.close()


def test_observations_stay_inside_the_charset() -> None:
    assert {"\n", " ", "~", "$", "é"} <= set(CHARSET)
    assert to_charset("Fly → Zürich ✈") == "Fly ? Zürich ?"
    clipped = clip_middle("HEAD" + "x" * 100 + "TAIL", 20)
    assert len(clipped) == 20 and clipped.startswith("HEAD") and clipped.endswith("TAIL")
