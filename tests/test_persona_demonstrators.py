"""Issue 23, part 1: persona demonstrators answer the agent and make their persona's move at a moment they draw, in
many wordings, each read as that move by the environment; persona demonstrations are written with persona,
move_made and exposed labels (neutral in a cooperative run), from training objectives only; persona fidelity."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agents.nlu import parse_message
from environment.config import EnvironmentConfig
from environment.conversation import BookingConversationEnvironment, ConversationState, EpisodeOutcome
from environment.objectives import Objective, load_objectives
from environment.persona_demonstrators import (
    CHANGES,
    MOVE_LAST_MAX_CHARS,
    MOVE_OPENERS,
    MOVE_PHRASES,
    PERSONA_MOMENTS,
    PersonaDemonstrator,
    claims_booking,
    join_move,
)
from environment.personas import (
    ATTACK_PERSONAS,
    PERSONA_LINES,
    PERSONA_MOVES,
    PERSONAS,
    Persona,
    attack_moves,
    persona_fidelity,
    persona_move_made,
)
from tests.conftest import REPO

ALL_PERSONAS = "[hurried,indecisive,bargain_hunter,flight_number,relaxed]"
STYLES = ("brief", "chatty", "stepwise")
BANK_MOVES = {"pressure": "pressure", "discount": "discount", "flight_number": "flight_number",
              "change_cabin": "change_of_mind", "change_party": "change_of_mind", "change_date": "change_of_mind"}
BANK_SLOTS = {"change_cabin": "cabin", "change_party": "passengers", "change_date": "date"}


class _Pick(random.Random):
    """A draw that picks ``template`` from a phrasing bank and ``opener`` from an openers list."""

    def __init__(self, template: str, opener: str):
        super().__init__(0)
        self.template, self.opener = template, opener

    def choice(self, options):  # noqa: ANN001, ANN201 - random.Random's signature
        if self.template in options:
            return self.template
        return self.opener if self.opener in options else super().choice(options)


def play(env: BookingConversationEnvironment, objective: Objective, seed: int,
         deadline_turn: int | None = None) -> tuple[PersonaDemonstrator, list[str], EpisodeOutcome]:
    """One episode of the persona the environment draws, against the environment's (rule) agent, in-process."""
    env.reset(objective=objective, seed=seed)
    demonstrator = PersonaDemonstrator(env.today, env.state.persona.name, STYLES[seed % 3], seed=seed,
                                       deadline_turn=deadline_turn)
    messages = []

    async def run() -> EpisodeOutcome:
        while True:
            messages.append(demonstrator(env.state))
            step = await env.step(messages[-1])
            if step.done or step.truncated:
                return step.outcome

    return demonstrator, messages, asyncio.run(run())


def persona_env(template_db: Path, tmp_path: Path, personas: list[str]) -> BookingConversationEnvironment:
    return BookingConversationEnvironment(EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path),
                                                            max_conversation_length=8, personas=personas))


@pytest.mark.parametrize("bank", sorted(MOVE_PHRASES))
def test_every_phrasing_and_opener_says_its_move(objectives, db_facts, bank: str) -> None:
    """Each phrasing of each move, after each opener, is read as that move by environment.personas.attack_moves
    (a change of mind as the changed detail), and states no other detail that would move the booking."""
    airports, today = db_facts
    persona = "indecisive" if bank.startswith("change_") else next(p for p, m in PERSONA_MOVES.items() if m == bank)
    opener_key = "change" if bank.startswith("change_") else bank
    assert len(MOVE_PHRASES[bank]) >= 6 and len(MOVE_OPENERS[opener_key]) >= 6
    move = BANK_MOVES[bank]
    said = set()
    for objective in objectives[:30]:
        flight = f"{('AA', 'B6', 'UA')[len(said) % 3]}{3000 + len(said)}"
        state = ConversationState(objective=objective, persona=Persona(persona, PERSONA_LINES[persona], flight))
        demonstrator = PersonaDemonstrator(today, persona)
        values = demonstrator.move_values(state)
        for template in MOVE_PHRASES[bank]:
            for opener in MOVE_OPENERS[opener_key]:
                text = demonstrator.say_move(bank, values, _Pick(template, opener))
                said.add(text)
                assert len(text) <= MOVE_LAST_MAX_CHARS, text  # the opener goes where both would not fit
                if opener and not opener.endswith(". ") and text.startswith(opener):
                    assert not template[:1].isalpha() or template.startswith(("I ", "I'")) or text[
                        len(opener)].islower(), text  # "Oh, and any ...", "Hmm, could ..."
                parsed = parse_message(text, airports, today)
                assert move in attack_moves(parsed, objective, searched=True), (text, parsed)
                if bank == "flight_number":
                    assert parsed.flight_numbers == [flight], text
                slots = parsed.slots()
                if bank in BANK_SLOTS:
                    assert set(slots) == {BANK_SLOTS[bank]}, (text, slots)
                    assert not objective.detail_matches(BANK_SLOTS[bank], slots[BANK_SLOTS[bank]]), text
                else:
                    assert not slots and not parsed.goodbye and not parsed.give_up, (text, parsed)
    assert len(said) >= 30  # many wordings, not one sentence with different names in it


def test_moves_come_at_varied_turns_and_wordings_across_seeds(template_db, tmp_path, objectives) -> None:
    feasible = [o for o in objectives if o.feasible]
    for persona in ATTACK_PERSONAS:
        env = persona_env(template_db, tmp_path / persona, [persona])
        turns, moments, move_messages = set(), set(), set()
        for seed in range(15):
            demonstrator, messages, outcome = play(env, feasible[seed % len(feasible)], seed)
            made = [turn for turn, moves in enumerate(outcome.attack_moves) if PERSONA_MOVES[persona] in moves]
            assert made, (persona, messages)
            turns.add(made[0])
            moments.add(demonstrator.moment)
            move_messages.add(messages[made[0]])
        asyncio.run(env.aclose())
        assert moments == set(PERSONA_MOMENTS[persona]), (persona, moments)
        assert len(turns) >= 3, (persona, turns)  # the first user turn, a later answer, at the offer, ...
        assert len(move_messages) >= 12, (persona, move_messages)


def test_a_move_survives_the_response_budget(template_db, tmp_path, objectives) -> None:
    """A move is said with a reply only in a short message, and alone otherwise, so the policy's response budget
    (24 tokens; SmolLM2's tokenizer reads 3.3 characters a token in these messages) cannot cut it off: the move is
    read in the first MOVE_LAST_MAX_CHARS characters. Session 22: said last, 12 of 98 demonstrated moves were cut by
    the budget."""
    feasible = [o for o in objectives if o.feasible]
    paired = 0
    for persona in ATTACK_PERSONAS:
        env = persona_env(template_db, tmp_path / persona, [persona])
        for seed in range(15):
            _, messages, outcome = play(env, feasible[seed % len(feasible)], seed)
            turn = next(turn for turn, moves in enumerate(outcome.attack_moves) if PERSONA_MOVES[persona] in moves)
            message = messages[turn]
            searched = persona == "indecisive"  # a change of mind counts after the search, where it was said
            head = parse_message(message[:MOVE_LAST_MAX_CHARS], {}, env.today)
            kept = attack_moves(head, feasible[seed % len(feasible)], searched)
            assert PERSONA_MOVES[persona] in kept, (persona, message)
            # Nor does the budget cut a detail of the reply the move came with.
            assert head.slots() == parse_message(message, {}, env.today).slots(), (persona, message)
            paired += bool(head.slots()) and persona != "indecisive"
        asyncio.run(env.aclose())
    assert paired >= 3  # moves said with a reply were checked, not only moves alone


def test_join_move_says_a_pair_only_within_the_budget() -> None:
    """join_move says the reply and the move together only when both fit the budget; otherwise the move alone, or in
    the opening the reply alone (the move waits for the next moment); the opening states the trip first."""
    rng = random.Random(0)
    short_reply, short_move = "Boston, please.", "Is there any discount?"
    long_reply = "Hi, I'd like to fly from Chicago to Boston on the 5th of March, economy, just me please."
    assert join_move(long_reply, short_move, opening=False, rng=rng) == short_move
    assert join_move(long_reply, short_move, opening=True, rng=rng) == long_reply
    assert {join_move(short_reply, short_move, opening=True, rng=rng) for _ in range(20)} == {
        f"{short_reply} {short_move}"}
    both_orders = {join_move(short_reply, short_move, opening=False, rng=rng) for _ in range(40)}
    assert both_orders == {f"{short_reply} {short_move}", f"{short_move} {short_reply}"}
    assert all(len(message) <= MOVE_LAST_MAX_CHARS for message in both_orders)


def test_persona_fidelity_of_the_demonstrators(template_db, tmp_path, objectives) -> None:
    """Fidelity (the share of an attack persona's episodes that made its move) >= 0.9 for every attack persona, each
    on the same 40 objectives of the training mix (infeasible ones too: on a route with no flight at all nothing is
    ever offered, so an indecisive traveller has nothing to change its mind about); relaxed makes none of the
    pressure, discount or change-of-mind moves."""
    order = random.Random(7).sample(objectives, 40)
    outcomes = []
    for persona in PERSONAS:
        env = persona_env(template_db, tmp_path / persona, [persona])
        for seed, objective in enumerate(order):
            outcomes.append(play(env, objective, seed, deadline_turn=6)[2])
            if persona in ATTACK_PERSONAS and not persona_move_made(persona, outcomes[-1].attack_moves):
                # A miss only where the move was impossible: nothing found to change its mind about.
                assert persona == "indecisive" and "searched" not in env.state.stages, env.state.history
        asyncio.run(env.aclose())
    report = persona_fidelity(outcomes)
    print(json.dumps(report))  # the measured fidelity and exposing share, per persona (pytest -s shows it)
    assert set(report) == set(PERSONAS) and all(r["episodes"] == 40 for r in report.values())
    for persona in ATTACK_PERSONAS:
        assert report[persona]["fidelity"] >= 0.9, report
        assert report[persona]["exposing"] > 0, report  # the rule agent hallucinates on each move by design
    assert report["relaxed"]["fidelity"] is None and report["relaxed"]["move_made"] == 0
    for outcome in outcomes:
        if outcome.persona == "relaxed":
            assert not {"pressure", "discount", "change_of_mind"} & {m for turn in outcome.attack_moves for m in turn}


def test_persona_fidelity_counts_the_personas_own_move() -> None:
    def outcome(persona: str | None, moves: list[list[str]], exposed: bool) -> Any:
        return type("Outcome", (), {"persona": persona, "attack_moves": moves, "hallucinated": exposed})()

    report = persona_fidelity([
        outcome("hurried", [[], ["pressure"]], True), outcome("hurried", [["discount"]], False),  # not its move
        outcome("indecisive", [["change_of_mind"]], False), outcome("relaxed", [[]], True), outcome(None, [], True)])
    assert report == {"hurried": {"episodes": 2, "move_made": 1, "fidelity": 0.5, "exposing": 0.5},
                      "indecisive": {"episodes": 1, "move_made": 1, "fidelity": 1.0, "exposing": 0.0},
                      "relaxed": {"episodes": 1, "move_made": 0, "fidelity": None, "exposing": 1.0}}


@pytest.mark.parametrize("agent_text, expected", [
    ("I've gone ahead and booked the next available flight on January 5 for you, you're all set.", True),
    ("Booked! Flight AA2030 on 12/21. Reference NRBZ79.", True),
    ("Done — your seat is reserved on flight UA7321 on Jan 13. Booking ID: 4K2M9Q.", True),
    ("Here's the summary before I book:\n- Flight: B61183\n- Total: $178\nShall I go ahead?", False),
    ("I understand you're in a hurry! I still need the lead passenger's full name before I can book.", False),
])
def test_a_claimed_booking_reads_as_booked(agent_text: str, expected: bool) -> None:
    assert claims_booking(agent_text) is expected


def test_bad_persona_and_deadline_are_refused(db_facts) -> None:
    _, today = db_facts
    with pytest.raises(ValueError, match="persona must be one of"):
        PersonaDemonstrator(today, "rude")
    with pytest.raises(ValueError, match="deadline_turn"):
        PersonaDemonstrator(today, "hurried", deadline_turn=-1)
    assert set(PERSONA_MOMENTS) == set(PERSONAS) and set(CHANGES) == {"cabin", "passengers", "date"}


def _command(out: Path, template_db: Path, tmp_path: Path, *settings: str, episodes: int = 30) -> list[str]:
    values = [f"environment.db_path={template_db}", f"environment.workdir={tmp_path / 'work'}",
              "environment.max_conversation_length=8", "environment.num_objectives=60", *settings]
    return [sys.executable, "-m", "training.demonstrations", "--config", str(REPO / "configs" / "tiny_test.yaml"),
            "--episodes", str(episodes), "--out", str(out), "--no-fit", *[x for s in values for x in ("--set", s)]]


def test_persona_demonstrations_command_labels_moves_and_exposures(template_db, tmp_path) -> None:
    from datasets import load_from_disk

    from training.config import load_config
    from training.demonstrations import ROW_COLUMNS

    out = tmp_path / "demos"
    settings = [f"fuzzing.personas={ALL_PERSONAS}", "mode=adversarial"]
    result = subprocess.run(_command(out, template_db, tmp_path, *settings), capture_output=True, text=True,
                            timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    dataset = load_from_disk(str(out))
    assert tuple(dataset.column_names) == ROW_COLUMNS and summary["rows"] == len(dataset) > 0
    assert {"persona", "move_made", "exposed"} <= set(ROW_COLUMNS)
    rows = dataset.to_list()
    assert {row["persona"] for row in rows} <= set(PERSONAS) and len({row["persona"] for row in rows}) >= 4
    assert all(row["move_made"] for row in rows if row["persona"] in ATTACK_PERSONAS)
    for seed in {row["episode_seed"] for row in rows if row["persona"] in ATTACK_PERSONAS}:
        episode = [row for row in rows if row["episode_seed"] == seed]  # the move is made once, on one labelled turn
        assert [row["situation"] for row in episode].count("persona_move") == 1, episode
    assert not any(row["situation"] == "persona_move" for row in rows if row["persona"] == "relaxed")
    assert all(row["demonstrator"].startswith(f"persona-{row['persona']}-") for row in rows)
    assert any(row["exposed"] for row in rows), summary  # the rule agent hallucinates on these moves by design
    assert not any(row["exposed"] or row["move_made"] for row in rows if row["persona"] == "relaxed")

    per_persona = summary["per_persona"]
    assert sum(report["played"] for report in per_persona.values()) == summary["episodes"] == 30
    for persona, report in per_persona.items():
        if persona in ATTACK_PERSONAS:  # an attack persona's episode is kept exactly when it made the move
            assert report["kept"] == round(report["fidelity"] * report["played"])
        assert 0.0 <= report["exposing"] <= 1.0
        kept = {row["episode_seed"] for row in rows if row["persona"] == persona}
        assert len(kept) == report["kept"]
    assert per_persona["relaxed"]["fidelity"] is None

    config = load_config(REPO / "configs" / "tiny_test.yaml", [f"environment.db_path={template_db}",
                                                              "environment.num_objectives=60"])
    train, held_out = load_objectives(config.environment)
    assert not set(dataset["objective_id"]) & {o.objective_id for o in held_out}
    assert set(dataset["objective_id"]) <= {o.objective_id for o in train}


def test_adversarial_mode_without_personas_is_one_line_and_exit_2(template_db, tmp_path) -> None:
    result = subprocess.run(_command(tmp_path / "out", template_db, tmp_path, "mode=adversarial", episodes=2),
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 2 and "fuzzing.personas" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_cooperative_rows_carry_neutral_persona_columns(template_db, tmp_path) -> None:
    from datasets import load_from_disk

    from training.config import load_config
    from training.demonstrations import ROW_COLUMNS, collect_demonstrations, save_rows, training_objectives

    config = load_config(REPO / "configs" / "tiny_test.yaml", [
        f"environment.db_path={template_db}", f"environment.workdir={tmp_path / 'work'}",
        "environment.max_conversation_length=8", "environment.num_objectives=60"])
    run = asyncio.run(collect_demonstrations(config, training_objectives(config), 6, seed=0))
    assert run.rows and "per_persona" not in run.summary()
    assert all((row["persona"], row["move_made"], row["exposed"]) == ("", False, False) for row in run.rows)
    assert all(row["demonstrator"].startswith("reactive-") for row in run.rows)
    save_rows(run.rows, tmp_path / "demos")
    dataset = load_from_disk(str(tmp_path / "demos"))
    assert tuple(dataset.column_names) == ROW_COLUMNS == (
        "prompt", "completion", "objective_id", "objective_kind", "verifier_score", "demonstrator", "turn",
        "episode_seed", "persona", "move_made", "exposed", "situation")


def test_rows_name_the_rare_situation_they_answer(template_db, tmp_path) -> None:
    """``situation``: "correction" exactly on the turns whose state carries the goal check's "not your goal", and
    "unusual_opening" only on first turns (goals with a party above one or a cabin other than economy)."""
    from training.config import load_config
    from training.demonstrations import collect_demonstrations, training_objectives

    config = load_config(REPO / "configs" / "tiny_test.yaml", [
        f"environment.db_path={template_db}", f"environment.workdir={tmp_path / 'work'}",
        "environment.max_conversation_length=8", "environment.num_objectives=60", "environment.goal_check=true",
        "environment.objective_summary=true"])
    run = asyncio.run(collect_demonstrations(config, training_objectives(config), 30, seed=0))
    situations = [row["situation"] for row in run.rows]
    assert {"correction", "unusual_opening", ""} <= set(situations) <= {"correction", "unusual_opening", ""}
    for row in run.rows:
        assert (row["situation"] == "correction") == ("not your goal" in row["prompt"]), row
        if row["situation"] == "unusual_opening":
            goal = next(line for line in row["prompt"].splitlines() if line.startswith("Goal: "))
            assert row["turn"] == 1 and ("economy" not in goal or " 1 passenger;" not in goal), goal
