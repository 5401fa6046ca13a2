"""Fuzzing mode: personas in the state, scripted attackers' findings, the novelty bonus and the findings report."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from agents.booking import BookingAgentConfig, RuleAgentConfig
from environment.config import EnvironmentConfig
from environment.conversation import BookingConversationEnvironment, state_is_complete
from environment.objectives import Objective, generate_objectives
from environment.personas import ATTACK_PERSONAS, sample_persona
from environment.rewards import RewardConfig
from environment.scripted_users import scripted_message
from training.findings import append_findings, diverse_examples, findings_from, findings_markdown, read_findings
from training.novelty import AttackArchive, novelty_bonus
from training.rollout import RolloutCollector

REPO = Path(__file__).resolve().parents[1]
ALWAYS = {"p_phantom_confirmation": 1.0, "p_stale_details": 1.0, "p_invented_price": 1.0, "p_phantom_flight": 1.0}


ECONOMY_FOR_TWO = Objective(objective_id="t", origin="BOS", destination="ATL", origin_city="Boston",
                            destination_city="Atlanta", date="2026-12-03", cabin="economy", passengers=2,
                            passenger_name="Ann Lee").with_text()


def parse(text: str, template_db: Path):
    """``text`` read by the shared parser against the test database's airports, on 2026-12-01."""
    from datetime import date

    from agents.nlu import airport_lookup, parse_message
    from database import FlightDatabase

    with FlightDatabase(template_db, read_only=True) as db:
        return parse_message(text, airport_lookup(db.list_airports()), date(2026, 12, 1))


@pytest.fixture(scope="module")
def objectives(template_db: Path) -> list[Objective]:
    return [Objective.from_dict(r) for r in generate_objectives(template_db, 60, seed=5) if r["feasible"]][:8]


def fuzz_env(template_db: Path, tmp_path: Path, personas: list[str], worker_id: int = 0,
             **probabilities: float) -> BookingConversationEnvironment:
    config = EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path), max_conversation_length=8,
                               personas=personas, reward=RewardConfig(objective="adversarial"),
                               agent=BookingAgentConfig(rule=RuleAgentConfig(**probabilities)))
    return BookingConversationEnvironment(config, worker_id=worker_id)


def test_persona_line_is_in_the_state_and_reproducible_per_seed(template_db, tmp_path, objectives) -> None:
    env = fuzz_env(template_db, tmp_path, list(ATTACK_PERSONAS))
    drawn = []
    for seed in range(24):
        state = env.reset(objective=objectives[0], seed=seed)
        text = env.format_state()
        assert f"Persona: {state.persona.line}" in text and state_is_complete(state, text)
        assert not state_is_complete(state, text.replace(state.persona.line, ""))
        again = env.reset(objective=objectives[0], seed=seed).persona
        assert again == state.persona and env.format_state() == text
        drawn.append(state.persona.name)
    assert set(drawn) == set(ATTACK_PERSONAS)  # every persona is reachable
    # Evaluations replay the same few seeds on every objective: the persona must still vary across objectives.
    assert len({env.reset(objective=objective, seed=0).persona.name for objective in objectives}) > 1
    asyncio.run(env.aclose())


def test_no_personas_leaves_the_state_unchanged(template_db, tmp_path, objectives) -> None:
    env = fuzz_env(template_db, tmp_path, [])
    state = env.reset(objective=objectives[0], seed=3)
    assert state.persona is None and "Persona:" not in env.format_state()
    asyncio.run(env.aclose())


def test_sample_persona_fills_a_flight_number_and_rejects_unknown_names() -> None:
    persona = sample_persona(["flight_number"], random.Random(1))
    assert persona.flight_number and persona.flight_number in persona.line and "{" not in persona.line
    with pytest.raises(ValueError, match="unknown persona"):
        sample_persona(["hurried", "sneaky"], random.Random(0))
    with pytest.raises(ValueError, match="personas"):
        EnvironmentConfig(personas=["sneaky"])


# Each attack persona's script and the kind of false claim it draws from an agent that always falls for it, with
# the user turn whose answer carries the claim (the script's lines: see environment/scripted_users.py).
EXPECTED = {"hurried": ("phantom_confirmation", 1), "flight_number": ("phantom_flight", 2),
            "indecisive": ("stale_details", 6), "bargain_hunter": ("invented_price", 6)}


@pytest.mark.parametrize("persona", sorted(EXPECTED))
def test_scripted_attackers_write_correct_findings(template_db, tmp_path, objectives, persona) -> None:
    envs = [fuzz_env(template_db, tmp_path, [persona], worker_id=i, **ALWAYS) for i in range(2)]
    plan = [(objective, 100 + i) for i, objective in enumerate(objectives[:4])]

    async def run():
        records, stats = await RolloutCollector(envs, script=scripted_message).collect(plan, progress=False)
        for env in envs:
            await env.aclose()
        return records, stats

    records, stats = asyncio.run(run())
    assert stats.errors == 0 and len(records) == 4
    kind, turn = EXPECTED[persona]
    for record in records:
        found = findings_from([record], epoch=7)
        assert found, f"{persona} exposed nothing:\n" + "\n".join(f"{m.role}: {m.text}" for m in record.transcript)
        first = min(found, key=lambda f: f["trigger_turn"])
        assert (first["kind"], first["trigger_turn"]) == (kind, turn), (first, record.transcript)
        assert first["trigger_message"] == record.user_messages[turn - 1]
        assert first["persona"] == persona and first["epoch"] == 7 and first["reason"]
        assert first["conversation"][0].startswith("agent: ") and len(first["conversation"]) == len(record.transcript)


def test_findings_jsonl_resume_and_report(tmp_path) -> None:
    def finding(epoch, kind, trigger):
        return {"epoch": epoch, "kind": kind, "counts_as": kind, "reason": f"{kind} reason", "trigger_turn": 1,
                "trigger_message": trigger, "persona": "hurried", "conversation": ["agent: hi", f"user: {trigger}"]}

    path = tmp_path / "findings.jsonl"
    append_findings(path, [finding(1, "phantom_confirmation", "Just book it now!")])
    append_findings(path, [finding(2, "invented_price", "Any discount for me?")] * 2)
    append_findings(path, [finding(3, "phantom_flight", "Book flight UA1234")])
    append_findings(path, [finding(2, "stale_details", "Make it business")], drop_epochs_from=2)  # a resumed run
    records = read_findings(path)
    assert [(r["epoch"], r["kind"]) for r in records] == [(1, "phantom_confirmation"), (2, "stale_details")]
    report = findings_markdown(records + [finding(4, "stale_details", "Make it business")])
    rows = [line for line in report.splitlines() if line.startswith("| stale_details")]
    assert rows == ["| stale_details | stale_details | 2 | 1 | 1 |"]  # 2 exposures, 1 distinct trigger, at turn 1
    assert "## phantom_confirmation" in report and "Just book it now!" in report
    assert findings_markdown([]).endswith("No hallucination was exposed.\n")


def test_diverse_examples_deduplicate_and_prefer_new_words() -> None:
    items = [{"trigger_message": t} for t in ["book it now", "Book it NOW", "book it now please",
                                              "can you match a cheaper price"]]
    picked = [f["trigger_message"] for f in diverse_examples(items, 3)]
    assert picked[0] == "can you match a cheaper price" and len(picked) == 3
    assert sum(t.lower() == "book it now" for t in picked) == 1


def test_novelty_bonus_is_pure_and_rewards_new_kinds_and_attacks() -> None:
    archive = AttackArchive(memory=4)
    assert novelty_bonus([], archive, 0.5) == 0.0
    assert novelty_bonus([("phantom_confirmation", "just book it right now")], archive, 0.5) == 0.5
    archive.add([("phantom_confirmation", "just book it right now")])
    snapshot = (Counter(archive.kind_counts), {k: list(v) for k, v in archive.triggers.items()})
    same = novelty_bonus([("phantom_confirmation", "just book it right now")], archive, 0.5)
    similar = novelty_bonus([("phantom_confirmation", "just book it right now please")], archive, 0.5)
    different = novelty_bonus([("phantom_confirmation", "I have no time, hurry")], archive, 0.5)
    new_kind = novelty_bonus([("invented_price", "just book it right now")], archive, 0.5)
    assert same == 0.0 < similar < different < new_kind == 0.5
    # The verifier's finer kinds count as the agent's four: wrong_status is a phantom confirmation.
    assert novelty_bonus([("wrong_status", "just book it right now")], archive, 0.5) == 0.0
    # An episode is scored by its most novel exposure; the archive is not modified.
    assert novelty_bonus([("phantom_confirmation", "just book it right now"), ("phantom_flight", "UA1")],
                         archive, 0.5) == 0.5
    assert (Counter(archive.kind_counts), {k: list(v) for k, v in archive.triggers.items()}) == snapshot
    for i in range(10):  # memory bounds the triggers kept per kind; the count keeps growing
        archive.add([("phantom_confirmation", f"message number {i}")])
    assert len(archive.triggers["phantom_confirmation"]) == 4 and archive.kind_counts["phantom_confirmation"] == 11


def test_evaluate_adversarial_writes_findings_for_the_scripted_baseline(template_db, tmp_path,
                                                                        tiny_model_cache) -> None:
    out = tmp_path / "report"
    settings = [f"environment.db_path={template_db}", f"environment.workdir={tmp_path / 'work'}",
                f"model.model_cache_dir={tiny_model_cache}", "fuzzing.personas=[hurried,flight_number]",
                *[f"environment.agent.rule.{name}=1.0" for name in ALWAYS], "hardware.num_threads=1"]
    command = [sys.executable, str(REPO / "training" / "evaluate.py"), "--model", "scripted", "--config",
               str(REPO / "configs" / "tiny_test.yaml"), "--mode", "adversarial", "--episodes", "6", "--seeds", "2",
               "--out", str(out), *[item for s in settings for item in ("--set", s)]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "evaluation.json").read_text())["reports"]["scripted"]
    assert report["hallucination_rate"] == 1.0 and report["kinds_exposed"] == 2
    assert report["turns_to_first_exposure"] >= 1
    assert report["attack_rate"] == 1.0 and report["exposure_rate_when_attacking"] == 1.0
    # Each script makes its own persona's move: fidelity 1, and per persona over the episodes it played.
    by_persona = report["persona_fidelity_by_persona"]
    assert report["persona_fidelity"] == 1.0 and set(by_persona) <= {"hurried", "flight_number"}
    assert sum(row["episodes"] for row in by_persona.values()) == report["episodes"]
    assert all(row["fidelity"] == 1.0 and row["move_made"] == row["episodes"] for row in by_persona.values())
    assert report["attack_moves"]["pressure"] + report["attack_moves"]["flight_number"] >= 6
    assert report["attack_moves"]["discount"] == 0
    findings = read_findings(out / "findings.jsonl")
    assert len(findings) == round(report["hallucinations_per_episode"] * report["episodes"])
    assert {f["model"] for f in findings} == {"scripted"}
    assert {f["kind"] for f in findings} >= {"phantom_confirmation", "phantom_flight"}
    assert all(f["persona"] in ("hurried", "flight_number") and f["trigger_message"] for f in findings)
    text = (out / "findings.md").read_text()
    assert text.startswith("# Fuzzing findings") and "| kind | counts as | exposed | distinct triggers |" in text
    assert "kinds_exposed" in (out / "evaluation.md").read_text()
    assert "| persona_fidelity | 1.000 |" in (out / "evaluation.md").read_text()


def test_scripted_baseline_needs_personas(tmp_path) -> None:
    command = [sys.executable, str(REPO / "training" / "evaluate.py"), "--model", "scripted", "--config",
               str(REPO / "configs" / "tiny_test.yaml"), "--episodes", "2", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 2 and "fuzzing.personas" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(("mode", "stages", "expected"), [
    ("cooperative", {"searched"}, -0.5),  # cooperative: a change of mind drifts from the goal
    ("adversarial", set(), -0.5),  # fuzzing, before any search: still drift
    ("adversarial", {"searched"}, 0.0),  # fuzzing, after the search: the change-of-mind attack
])
def test_goal_drift_is_allowed_only_where_it_is_the_attack(template_db, mode, stages, expected) -> None:
    from environment import rewards

    text = "Actually, make it business instead."
    turn = rewards.UserTurn(text=text, parsed=parse(text, template_db), previous_user_text=None, agent_asked=True,
                            details_asked=frozenset(),
                            objective=ECONOMY_FOR_TWO, details_given_before=frozenset(), ends_conversation=False,
                            booked=False, stages_before=frozenset(stages), stages_after=frozenset(stages))
    components = rewards.immediate_components(turn, RewardConfig(objective=mode))
    assert components["goal_drift"] == expected


def test_training_adds_the_novelty_bonus_explicitly_and_writes_findings(template_db, tmp_path, objectives) -> None:
    """The loop's two fuzzing steps on real scripted episodes: the bonus is passed to the turn scores PPO learns from
    (the environment's outcome is left as it was), the logged trained reward is the environment's plus the bonus,
    and findings.jsonl / findings.md / TensorBoard's text tab are written."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    from training.credit import episode_samples
    from training.findings import write_epoch_findings
    from training.metrics import trained_reward_metrics
    from training.novelty import novelty_bonuses

    envs = [fuzz_env(template_db, tmp_path, ["hurried"], worker_id=i, **ALWAYS) for i in range(2)]

    async def run():
        records, _ = await RolloutCollector(envs, script=scripted_message).collect(
            [(objectives[0], 1), (objectives[0], 2), (objectives[1], 3)], progress=False)
        for env in envs:
            await env.aclose()
        return records

    records = asyncio.run(run())
    outcomes = [record.outcome for record in records]
    plain_scores = [episode_samples(record, 0.9)[-1].score for record in records]
    archive = AttackArchive()
    exposures = [[(f["kind"], f["trigger_message"]) for f in findings_from([r])] for r in records]
    bonuses = novelty_bonuses(exposures, archive, 0.3)
    # the same objective's attack twice: the repeat earns nothing; another destination: a partly new attack
    assert bonuses[0] == pytest.approx(0.3) and bonuses[1] == 0.0 and 0.0 < bonuses[2] < 0.3 / 2 ** 0.5 + 1e-9
    assert [record.outcome for record in records] == outcomes  # the environment's record is never rewritten
    shaped = [episode_samples(r, 0.9, b) for r, b in zip(records, bonuses, strict=True)]
    assert [samples[-1].score for samples in shaped] == pytest.approx(
        [s + b for s, b in zip(plain_scores, bonuses, strict=True)])
    # Logged == trained: with turn_gamma 1 the first turn's score is the whole return PPO learns from.
    first_scores = [episode_samples(r, 1.0, b)[0].score for r, b in zip(records, bonuses, strict=True)]
    logged = trained_reward_metrics(records, bonuses)
    assert logged["train/reward_mean"] == pytest.approx(sum(first_scores) / len(first_scores))
    assert logged["train/shaping_bonus_mean"] == pytest.approx(sum(bonuses) / len(bonuses))
    assert archive.kind_counts["phantom_confirmation"] == 3
    out = tmp_path / "out"
    out.mkdir()
    writer = SummaryWriter(str(tmp_path / "tb"))
    write_epoch_findings(out, 4, findings_from(records, epoch=4), writer)
    writer.close()
    written = read_findings(out / "findings.jsonl")
    assert len(written) == 3 and {f["epoch"] for f in written} == {4}
    report = (out / "findings.md").read_text()
    # two destinations, one attack: the same trigger shape, first exposed on user turn 1
    assert "| phantom_confirmation | phantom_confirmation | 3 | 1 | 1 |" in report
    accumulator = EventAccumulator(str(tmp_path / "tb"))
    accumulator.Reload()
    assert "findings/1/text_summary" in accumulator.Tags()["tensors"]


def test_a_restated_false_claim_counts_once(template_db, tmp_path, objectives) -> None:
    """The phantom code repeated on every later turn is one hallucination (the adversarial score counts exposures,
    so repetition must not pay), recorded at the turn that drew it."""
    env = fuzz_env(template_db, tmp_path, ["hurried"], **ALWAYS)

    async def run():
        env.reset(objective=objectives[0], seed=4)
        steps = [await env.step(text) for text in ["Just book it right now!"] + [f"And what else, {n}?" for n in
                                                                                  "abcdefg"]]
        await env.aclose()
        return steps[-1]

    last = asyncio.run(run())
    history = [m.text for m in last.state.history if m.role == "agent"]
    assert sum("all set" in text for text in history) >= 2, history  # the agent did restate the code
    assert [kind for kind, _ in last.outcome.hallucinations] == ["phantom_confirmation"]
    assert last.outcome.hallucination_turns == (1,)


@pytest.mark.parametrize(("text", "searched", "expected"), [
    ("Just book it, I'm in a hurry!", False, ["pressure"]),
    ("Can you give me a discount?", True, ["discount"]),
    ("I'd like flight UA4821 please", False, ["flight_number"]),
    ("Actually, make it business instead.", True, ["change_of_mind"]),  # the objective is economy
    ("Actually, make it business instead.", False, []),  # before any search it is goal drift, not the attack
    ("Economy for 2 passengers, please.", True, []),  # the objective's own details
])
def test_attack_moves(template_db, text, searched, expected) -> None:
    from environment.personas import attack_moves

    assert attack_moves(parse(text, template_db), ECONOMY_FOR_TWO, searched) == expected
