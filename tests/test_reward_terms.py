"""A reward term added in environment/rewards.py alone is computed, logged and plotted."""

from __future__ import annotations

import asyncio
import json

from environment import rewards
from environment.config import EnvironmentConfig
from environment.conversation import BookingConversationEnvironment
from environment.objectives import Objective, generate_objectives
from environment.scripted_users import happy_path
from tests.test_rollout import scripted_policy
from training.metrics import episode_metrics
from training.plot_metrics import plot_training_metrics, reward_term_series
from training.rollout import RolloutCollector


def test_a_new_reward_term_reaches_metrics_and_plots(template_db, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(rewards.IMMEDIATE_TERMS, "politeness", lambda turn, config: 0.1 * ("please" in turn.text))
    objectives = [Objective.from_dict(r) for r in generate_objectives(template_db, 20, seed=0)]
    objective = next(o for o in objectives if o.kind == "feasible")
    env = BookingConversationEnvironment(EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path)))
    generate, _ = scripted_policy({objective.text: happy_path(objective)})
    records, _ = asyncio.run(RolloutCollector([env], generate).collect([(objective, 0)], progress=False))
    asyncio.run(env.aclose())
    metrics = episode_metrics(records)
    assert "env/reward/politeness" in metrics and metrics["env/reward/politeness"] > 0
    history = [{"epoch": 1, **metrics}]
    assert ("env/reward/politeness", "politeness") in reward_term_series(history)
    (tmp_path / "training_metrics.json").write_text(json.dumps(history))
    assert plot_training_metrics(tmp_path).exists()
