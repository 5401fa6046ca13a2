"""Issue 22, part 1: objectives worded in many ways, fields recoverable, generation deterministic and its fields and
train/held-out split unchanged; the held-out rewordings file."""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

import pytest

from agents.nlu import parse_date
from database import FlightDatabase
from environment.config import EnvironmentConfig
from environment.objective_wordings import NUMBER_WORDS, word_objective
from environment.objectives import Objective, generate_objectives, load_objectives, load_objectives_jsonl
from tests.conftest import REPO

# sha256 of the seed-0 generator's 200 objectives without their text, measured with the single-template generator
# before the wordings: the wordings must change only ``text``.
FIELDS_SHA256 = "53d250bc83a017c924473bb3c5623753abc4e8cd1ed675b3f8d577cdbf09d410"
SOLO = ("just you", "yourself", "just me", "myself", "me alone", "solo", "single traveller", "party of one", "1 ",
        "one ")


@pytest.fixture(scope="module")
def objectives(template_db: Path) -> list[Objective]:
    return [Objective.from_dict(r) for r in generate_objectives(template_db, 200, seed=0)]


@pytest.fixture(scope="module")
def today(template_db: Path):
    with FlightDatabase(template_db, read_only=True) as db:
        return db.today()


def _skeleton(objective: Objective) -> str:
    """The text with every field value masked: what is left is the template."""
    text = objective.text
    for value in (objective.origin_city, objective.destination_city, objective.origin, objective.destination,
                  objective.passenger_name):
        text = text.replace(value, "<F>")
    return re.sub(r"\d+|January|February|March|April|May|June|July|August|September|October|November|December|"
                  r"\b(Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day\b|\b[A-Z][a-z]{2}\b", "<F>", text)


def test_generated_texts_are_varied(objectives: list[Objective], today) -> None:
    first = objectives[:50]
    templates = {word_objective(o, today).template for o in first}
    skeletons = {_skeleton(o) for o in first}
    voices = {template.split(":")[0] for template in templates}
    assert len(templates) >= 40 and len(skeletons) >= 40, (len(templates), len(skeletons))
    assert voices == {"second", "first", "third", "note"}
    assert sum(o.text.startswith("You want to fly from") for o in first) < 10


def test_every_field_is_recoverable_from_the_text(objectives: list[Objective], today) -> None:
    for o in objectives:
        text = o.text
        assert o.origin_city in text or o.origin in text, text
        assert o.destination_city in text or o.destination in text, text
        assert parse_date(text, today) == o.date, text  # the absolute date is the first date the parser reads
        assert o.passenger_name in text, text
        if o.passengers == 1:
            assert any(form in text.lower() for form in SOLO), text
        else:
            assert re.search(rf"\b({o.passengers}|{NUMBER_WORDS[o.passengers]})\b", text.lower()), text
        cabin_words = {"economy": ("econ", "eco", "coach"), "business": ("business", "biz", "bus."),
                       "first": ("first", "1st")}[o.cabin]
        assert any(word in text.lower() for word in cabin_words), text
        if o.budget is not None:
            assert f"${o.budget:,.0f}" in text, text
        if o.flexible_days:
            assert str(o.flexible_days) in re.sub(r"\d{4}-\d\d-\d\d", "", text), text
        assert "\n" not in text and len(text) < 250


def test_generation_keeps_fields_and_split_and_is_deterministic(template_db: Path) -> None:
    dataset = generate_objectives(template_db, 200, seed=0)
    rows = [{k: v for k, v in r.items() if k != "text"} for r in dataset]
    assert hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest() == FIELDS_SHA256
    assert dataset.to_list() == generate_objectives(template_db, 200, seed=0).to_list()
    assert dataset["text"] != generate_objectives(template_db, 200, seed=1)["text"][:200]


def test_wording_is_deterministic_per_seed(objectives: list[Objective], today) -> None:
    o = objectives[0]
    assert word_objective(o, today) == word_objective(o, today)
    assert word_objective(o, today, random.Random(7)) == word_objective(o, today, random.Random(7))
    assert len({word_objective(o, today, random.Random(seed)).text for seed in range(30)}) >= 20
    # A text loaded without ``text`` gets the same draw, less any relative hint (that needs the database's today).
    hints = 0
    for o in objectives:
        plain = re.sub(r" \((tomorrow|in \d+ days)\)|this \w+day, ", "", o.text)
        hints += plain != o.text
        assert Objective.from_dict({**o.to_dict(), "text": ""}).text == plain
    assert hints >= 10  # relative hints are there to lose


def test_heldout_rewordings_file(template_db: Path, objectives: list[Objective], today) -> None:
    path = REPO / "results" / "heldout_rewordings.jsonl"
    loaded = load_objectives_jsonl(path)
    assert len(loaded) == 24 and {o.kind for o in loaded} == {"feasible", "multi_passenger", "budget", "infeasible"}
    train, held_out = load_objectives(EnvironmentConfig(db_path=str(template_db)))
    by_id = {o.objective_id: o for o in held_out}
    assert not {o.objective_id for o in loaded} & {o.objective_id for o in train}
    for o in loaded:
        original = by_id[o.objective_id]  # from the held-out split, every structured field kept
        assert {**o.to_dict(), "text": ""} == {**original.to_dict(), "text": ""}
        assert o.text != original.text and o.text != word_objective(o, today).text
    from training.heldout_rewordings import heldout_rewordings  # the committed file is what the script builds

    assert [o.to_dict() for o in heldout_rewordings(EnvironmentConfig(db_path=str(template_db)))] == \
        [o.to_dict() for o in loaded]


def test_the_goal_line_reads_the_same_however_the_objective_is_worded(template_db: Path, objectives, tmp_path):
    """``environment.objective_summary``: the state carries the objective's fields in one fixed form under its
    text, cities beside their codes, so a user's own wording ("need flt DFW>ORD 1/1") and the generator's give
    the policy the same goal line; off (the default), no such line."""
    import asyncio
    import dataclasses

    from agents.booking import BookingAgentConfig
    from environment.conversation import BookingConversationEnvironment

    objective = next(o for o in objectives if o.budget is not None and o.flexible_days)
    terse = dataclasses.replace(objective, text=f"need flt {objective.origin}>{objective.destination} asap")
    states = {}
    for summary in (True, False):
        config = EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path / str(summary)),
                                   objective_summary=summary, agent=BookingAgentConfig(transport="inprocess"))
        env = BookingConversationEnvironment(config)
        for version in (objective, terse):
            env.reset(objective=version, seed=0)
            states[summary, version.text] = env.format_state()
            assert env.state_is_complete(states[summary, version.text])
        asyncio.run(env.aclose())
    goal_lines = {text: [line for line in state.splitlines() if line.startswith("Goal: ")]
                  for (summary, text), state in states.items() if summary}
    assert goal_lines[objective.text] == goal_lines[terse.text] and len(goal_lines[terse.text]) == 1
    goal = goal_lines[terse.text][0]
    for value in (f"{objective.origin_city} ({objective.origin})", f"({objective.destination})",
                  objective.passenger_name, f"{objective.cabin} class", f"${objective.budget:,.0f}",
                  f"{objective.flexible_days} day"):
        assert value in goal, (value, goal)
    assert not any("Goal: " in state for (summary, _), state in states.items() if not summary)
