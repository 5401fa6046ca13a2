"""Issue 22, parts 2, 3 and 6: reactive demonstrators answer what the agent asks (the rule agent, and an
OpenAI-compatible agent worded differently), verified demonstrations are written as a Dataset of training
objectives only, each prompt a state string the environment produced."""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest

from agents.booking import BookingAgentConfig, Message, OpenAIAgentConfig
from agents.nlu import parse_message
from environment.config import EnvironmentConfig
from environment.conversation import BookingConversationEnvironment, ConversationState
from environment.demonstrators import DEMONSTRATOR_STYLES, PHRASES, ReactiveDemonstrator, spoken_date
from environment.objectives import Objective, load_objectives
from tests.conftest import REPO
from tests.test_openai_agent import ScriptedServer, text_reply, tool_messages, tool_request
from training.demonstrations import is_verified

STYLES = sorted(DEMONSTRATOR_STYLES)


class _Only(random.Random):
    """A draw that always picks ``phrasing`` (to check each phrasing of a bank, one by one)."""

    def __init__(self, phrasing: str):
        super().__init__(0)
        self.phrasing = phrasing

    def choice(self, options):  # noqa: ANN001, ANN201 - random.Random's signature
        return self.phrasing if self.phrasing in options else super().choice(options)


def play(env: BookingConversationEnvironment, demonstrator: ReactiveDemonstrator, objective: Objective,
         seed: int) -> tuple[list[str], Any]:
    env.reset(objective=objective, seed=seed)
    messages = []

    async def run() -> Any:
        while True:
            messages.append(demonstrator(env.state))
            step = await env.step(messages[-1])
            if step.done or step.truncated:
                return step

    return messages, asyncio.run(run())


@pytest.mark.parametrize("move, slot", [("origin", "origin"), ("destination", "destination"), ("date", "date"),
                                        ("cabin", "cabin"), ("party_many", "passengers"), ("party_one", "passengers"),
                                        ("name_unasked", "passenger_name"), ("correct_party", "passengers"),
                                        ("correct_cabin", "cabin"), ("correct_date", "date"), ("trip", "date"),
                                        ("trip_party", "passengers")])
def test_every_phrasing_says_its_slot(objectives, db_facts, move: str, slot: str) -> None:
    """Each phrasing of each slot is read as that slot, with the objective's value, by the shared parser."""
    airports, today = db_facts
    for objective in objectives[:30]:
        if (move == "party_one") != (objective.passengers == 1) and move in ("party_one", "party_many",
                                                                            "correct_party", "trip_party"):
            continue
        demonstrator = ReactiveDemonstrator(today)
        for index, phrasing in enumerate(PHRASES[move]):
            values = demonstrator.slot_values(objective, random.Random(index))
            text = demonstrator.say(move, values, _Only(phrasing))
            parsed = parse_message(text, airports, today)
            assert slot in parsed.slots() and objective.detail_matches(slot, parsed.slots()[slot]), (text, parsed)
            if move in ("trip", "trip_party"):
                assert (parsed.origin, parsed.destination) == (objective.origin, objective.destination), text
                assert objective.detail_matches("date", parsed.date), text


def test_answers_to_a_name_question_and_endings_read_right(objectives, db_facts) -> None:
    airports, today = db_facts
    objective = objectives[0]
    question = "May I have the lead passenger's full name?"
    for phrasing in PHRASES["name"]:
        parsed = parse_message(phrasing.format(name=objective.passenger_name), airports, today, question)
        assert parsed.passenger_name == objective.passenger_name, phrasing
    for phrasing in PHRASES["confirm"]:
        assert parse_message(phrasing, airports, today).confirm, phrasing
    for move in ("goodbye_booked", "goodbye_unavailable"):
        for phrasing in PHRASES[move]:
            assert parse_message(phrasing, airports, today).ends_conversation(booked=False), phrasing
    for offset in range(1, 40):  # every written form of a date is that date
        iso = (today + timedelta(days=offset)).isoformat()
        for seed in range(5):
            assert parse_message(spoken_date(iso, today, random.Random(seed)), airports, today).date == iso


def test_demonstrators_book_feasible_objectives_and_end_infeasible_ones_politely(template_db, tmp_path,
                                                                                 objectives) -> None:
    env = BookingConversationEnvironment(EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path),
                                                           max_conversation_length=8))
    feasible = [o for o in objectives if o.feasible][:40]
    assert {o.kind for o in feasible} == {"feasible", "multi_passenger", "budget"}
    assert any(o.flexible_days for o in feasible)
    successes: dict[str, list[bool]] = {}
    first_messages = []
    for index, objective in enumerate(feasible):
        demonstrator = ReactiveDemonstrator(env.today, STYLES[index % len(STYLES)], seed=index)
        messages, step = play(env, demonstrator, objective, seed=index)
        successes.setdefault(objective.kind, []).append(bool(step.info["success"]))
        first_messages.append(messages[0])
    rate = sum(map(sum, successes.values())) / len(feasible)
    assert rate >= 0.9, successes
    assert all(sum(v) / len(v) >= 0.8 for v in successes.values()), successes
    assert len(set(first_messages)) >= 0.7 * len(first_messages)

    infeasible = [o for o in objectives if not o.feasible][:8]
    for index, objective in enumerate(infeasible):
        messages, step = play(env, ReactiveDemonstrator(env.today, STYLES[index % 3], seed=index), objective, index)
        assert is_verified(objective, step, env.config.verifier.infeasible_no_booking_score), messages
        assert step.info["success"] or step.info["reward_components"]["polite_ending"] > 0, messages
    asyncio.run(env.aclose())


def test_first_message_states_what_an_agent_would_assume_wrongly(objectives, db_facts) -> None:
    """A group traveller says the party size (and a cabin other than economy) before the agent assumes one
    passenger in economy, by style: the brief and chatty styles almost always do, the stepwise one never (it
    corrects the agent instead, so both paths are demonstrated); a one-passenger economy trip says neither unasked
    unless the style volunteers it. A relative date is never written "on in 3 days"."""
    airports, today = db_facts
    opening = "Hello! I'm your flight booking assistant. Where would you like to fly, and when?"
    groups = [o for o in objectives if o.passengers > 1][:12]
    premium = [o for o in objectives if o.cabin != "economy"][:12]
    assert len(groups) >= 6 and len(premium) >= 6
    stated: dict[str, list[bool]] = {style: [] for style in STYLES}
    for style in STYLES:
        for seed in range(4):
            for objective in groups + premium:
                state = _opening_state(objective, opening)
                message = ReactiveDemonstrator(today, style, seed=seed)(state)
                assert " on in " not in message and "on tomorrow" not in message, message
                parsed = parse_message(message, airports, today, opening)
                detail = "passengers" if objective in groups else "cabin"
                said = parsed.slots().get(detail)
                assert said is None or objective.detail_matches(detail, said), (message, objective)
                stated[style].append(said is not None)
    assert sum(stated["chatty"]) == len(stated["chatty"]), stated
    assert sum(stated["brief"]) >= 0.75 * len(stated["brief"]), stated
    assert not any(stated["stepwise"]), stated


def test_a_stated_party_comes_first_mostly_inside_the_trip_sentence(objectives, db_facts) -> None:
    """A reply cut at the policy's response budget keeps its start: a group traveller's opening says the party
    before the cabin, most often in the sentence that names the route and the date ("Three of us flying from ...")."""
    airports, today = db_facts
    opening = "Hello! I'm your flight booking assistant. Where would you like to fly, and when?"
    groups = [o for o in objectives if o.passengers > 1][:12]
    in_trip_sentence, openings = 0, 0
    for style in ("chatty", "brief"):
        for seed in range(4):
            for objective in groups:
                message = ReactiveDemonstrator(today, style, seed=seed)(_opening_state(objective, opening))
                sentences = re.split(r"(?<=[.!?,])\s+", message)
                party_at = next((i for i, s in enumerate(sentences)
                                 if parse_message(s, airports, today).passengers is not None), None)
                if party_at is None:
                    continue
                openings += 1
                before = " ".join(sentences[:party_at])
                assert parse_message(before, airports, today).cabin is None, message
                trip = parse_message(sentences[party_at], airports, today)
                in_trip_sentence += trip.origin == objective.origin and trip.date is not None
    assert openings >= 0.75 * 2 * 4 * len(groups)
    assert 0.5 * openings <= in_trip_sentence < openings  # both forms are demonstrated


@pytest.mark.parametrize("when", ["tomorrow", "in 3 days"])
def test_a_relative_date_is_never_put_after_on(objectives, db_facts, when: str) -> None:
    """"On {when}." with "in 3 days" says "In 3 days.", and the parser still reads the date."""
    airports, today = db_facts
    demonstrator = ReactiveDemonstrator(today)
    for move in ("trip", "date", "correct_date"):
        for phrasing in PHRASES[move]:
            values = {**demonstrator.slot_values(objectives[0], random.Random(0)), "when": when}
            text = demonstrator.say(move, values, _Only(phrasing))
            assert not re.search(r"\b[Oo]n (tomorrow|in \d)", text), text
            expected = (today + timedelta(days=1 if when == "tomorrow" else 3)).isoformat()
            assert parse_message(text, airports, today).date == expected, text


def _opening_state(objective: Objective, agent_text: str) -> ConversationState:
    return ConversationState(objective=objective, history=[Message(role="agent", text=agent_text)])


def test_one_objective_gets_varied_phrasings_across_seeds(template_db, tmp_path, objectives) -> None:
    env = BookingConversationEnvironment(EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path)))
    objective = next(o for o in objectives if o.kind == "multi_passenger")
    episodes = [play(env, ReactiveDemonstrator(env.today, STYLES[seed % 3], seed=seed), objective, seed)[0]
                for seed in range(20)]
    asyncio.run(env.aclose())
    assert len({messages[0] for messages in episodes}) >= 14  # distinct first messages: >= 0.7 of episodes
    assert len({message for messages in episodes for message in messages}) >= 40


def test_demonstrator_answers_the_question_an_llm_agent_asks(template_db, tmp_path, objectives, db_facts) -> None:
    """An OpenAI-compatible agent worded unlike the rule agent, that also searches for one passenger first: the
    demonstrator answers each slot asked, corrects the party size, picks a flight and confirms."""
    airports, today = db_facts
    objective = next(o for o in objectives if o.kind == "multi_passenger" and o.passengers >= 3)
    questions = {1: ("Thanks! Just to be sure, which city will you be departing from?", "origin"),
                 2: ("Lovely. What day do you want to leave?", "date"),
                 3: ("How many people are travelling?", "passengers"),
                 4: ("Which cabin would you like?", "cabin"),
                 7: ("Perfect. Could you share the full name for the booking?", "passenger_name")}
    picked: dict[str, Any] = {}

    def search(passengers: int) -> tuple[int, Any, float]:
        return tool_request("search_flights", {"origin": objective.origin, "destination": objective.destination,
                                               "date": objective.date, "cabin": objective.cabin,
                                               "passengers": passengers}, call_id=f"s{passengers}")

    def brain(payload: dict[str, Any], index: int) -> tuple[int, Any, float]:
        messages = payload["messages"]
        users = sum(m["role"] == "user" for m in messages)
        last = messages[-1]
        if last["role"] == "tool":
            data = json.loads(last["content"])
            if "flights" in data:
                picked["flights"] = data["flights"][:3]
                lines = [f"* {f['flight_number']} at {f['departure_time']} for ${f['price_per_passenger']:.2f} a head"
                         for f in picked["flights"]]
                return text_reply(f"Available ({data['count']} found):\n" + "\n".join(lines) + "\nWhich suits you?")
            return text_reply(f"Reserved! Your reference is {data['confirmation_code']}. Safe travels.")
        if users in questions:
            return text_reply(questions[users][0])
        if users == 5:
            return search(1)  # ignores the party size it was told
        if users == 6:
            return search(objective.passengers)
        if users == 8:
            return text_reply(f"Shall I reserve {picked['choice']['flight_number']} for {objective.passenger_name}?")
        if users == 9:
            flight = picked["choice"]
            return tool_request("book_flight", {"flight_number": flight["flight_number"], "date": objective.date,
                                                "cabin": objective.cabin, "passenger_name": objective.passenger_name,
                                                "passengers": objective.passengers}, call_id="b1")
        return text_reply("Anything else?")

    config = EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path), max_conversation_length=12,
                               agent=BookingAgentConfig(backend="openai", openai=OpenAIAgentConfig(
                                   timeout_seconds=5, max_retries=0)))
    demonstrator = ReactiveDemonstrator(today, "stepwise", seed=3)
    said: list[tuple[str, str]] = []

    async def run(base_url: str) -> Any:
        config.agent.openai.base_url = base_url
        env = BookingConversationEnvironment(config)
        env.reset(objective=objective, seed=0)
        try:
            while True:
                agent_text = env.state.history[-1].text
                message = demonstrator(env.state)
                said.append((agent_text, message))
                if env.state.turn == 6:  # the user's pick among the second search's flights
                    parsed = parse_message(message, airports, today, agent_text)
                    flights = picked["flights"]
                    index = parsed.option_index
                    picked["choice"] = next((f for f in flights if f["flight_number"] in parsed.flight_numbers),
                                            None) or (min(flights, key=lambda f: f["price_per_passenger"])
                                                      if index == -1 else flights[index])
                step = await env.step(message)
                if step.done or step.truncated:
                    return step
        finally:
            await env.aclose()

    with ScriptedServer(brain) as server:
        step = asyncio.run(run(server.base_url))
    for turn, (question, slot) in questions.items():
        agent_text, answer = said[turn]
        assert agent_text == question
        parsed = parse_message(answer, airports, today, agent_text)
        assert slot in parsed.slots() and objective.detail_matches(slot, parsed.slots()[slot]), (question, answer)
    assert parse_message(said[5][1], airports, today).passengers == objective.passengers  # the correction
    six = parse_message(said[6][1], airports, today, said[6][0])
    assert six.flight_numbers or six.option_index is not None, said[6]
    assert parse_message(said[8][1], airports, today).confirm, said[8]
    assert step.done and step.info["success"], said
    assert tool_messages(server.requests[-1]) and len(said) == 10


def test_demonstrations_command_writes_a_training_only_dataset(template_db, tmp_path, tiny_model_cache) -> None:
    from datasets import load_from_disk

    from training.config import load_config

    out = tmp_path / "demos"
    settings = [f"environment.db_path={template_db}", f"environment.workdir={tmp_path / 'work'}",
                f"model.model_cache_dir={tiny_model_cache}", "environment.max_conversation_length=8",
                "environment.num_objectives=60"]
    command = [sys.executable, "-m", "training.demonstrations", "--config", str(REPO / "configs" / "tiny_test.yaml"),
               "--episodes", "24", "--out", str(out), *[x for s in settings for x in ("--set", s)]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    dataset = load_from_disk(str(out))
    assert summary["episodes"] == 24 and summary["rows"] == len(dataset) and summary["kept"] >= 20
    assert set(dataset.column_names) >= {"prompt", "completion", "objective_id", "objective_kind", "verifier_score",
                                         "demonstrator", "turn"}
    config = load_config(REPO / "configs" / "tiny_test.yaml", settings)
    train, held_out = load_objectives(config.environment)
    assert not set(dataset["objective_id"]) & {o.objective_id for o in held_out}
    assert set(dataset["objective_id"]) <= {o.objective_id for o in train}
    assert all(score in (1.0, config.environment.verifier.infeasible_no_booking_score)
               for score in dataset["verifier_score"])

    # Replaying a kept episode's completions from its seed reproduces every prompt, state string for state string.
    from agents.auto_user.models import load_tokenizer, resolve_model

    tokenizer = load_tokenizer(resolve_model("tiny-gpt2", tiny_model_cache))
    env = BookingConversationEnvironment(config.environment, worker_id=5, tokenizer=tokenizer,
                                         max_state_tokens=config.model.max_query_length)
    by_id = {o.objective_id: o for o in train}
    rows = dataset.to_list()

    async def replay(episode: list[dict[str, Any]]) -> None:
        env.reset(objective=by_id[episode[0]["objective_id"]], seed=episode[0]["episode_seed"])
        for row in episode:
            assert env.format_state() == row["prompt"]
            await env.step(row["completion"])

    starts = [i for i, row in enumerate(rows) if row["turn"] == 1][:3]
    for start in starts:
        end = next((i for i in range(start + 1, len(rows)) if rows[i]["turn"] == 1), len(rows))
        asyncio.run(replay(rows[start:end]))
    asyncio.run(env.aclose())


@pytest.mark.parametrize("args, expected", [
    (["--episodes", "0"], "--episodes"),
    (["--episodes", "two"], "--episodes"),
    (["--config", "no/such.yaml"], "no such file"),
    (["--set", "environment.max_conversation_length=0"], "max_conversation_length"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args: list[str], expected: str) -> None:
    base = {"--config": str(REPO / "configs" / "tiny_test.yaml"), "--out": str(tmp_path / "out")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    command = [sys.executable, "-m", "training.demonstrations", *[x for kv in base.items() for x in kv]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_users_own_phrasings_extend_the_banks(db_facts) -> None:
    _, today = db_facts
    with pytest.raises(ValueError, match="unknown move"):
        ReactiveDemonstrator(today, phrases={"nmae": ["{name}."]})
    with pytest.raises(ValueError, match="at least one"):
        ReactiveDemonstrator(today, phrases={"name": []})
    with pytest.raises(ValueError, match="style"):
        ReactiveDemonstrator(today, style="rude")
    assert ReactiveDemonstrator(today, phrases={"confirm": ["Ja, bitte buchen."]}).phrases["confirm"] == [
        "Ja, bitte buchen."]


@pytest.mark.parametrize("agent_text, expected", [
    ("To confirm: flight AA123 on 2026-12-03, economy, 2 passengers, passenger Ann Lee, total $300.00. Shall I book "
     "it?", True),
    ("Here's the summary before I book:\n- Flight: B61183\n- Passengers: 1 passenger\n- Total: $178\nShall I go "
     "ahead?", True),
    ("Ready when you are: flight UA1904 on 12/02, 1 passenger, total $553. Should I confirm the booking?", True),
    ("Perfect. Could you share the full name for the booking?", False),
    ("Which of these flights would you like? You can say the flight number or 'the first one'.", False),
    ("Your booking ABC123 is confirmed.", False),
])
def test_asks_to_confirm_reads_the_question_not_its_itinerary(agent_text: str, expected: bool) -> None:
    from environment.demonstrators import asks_to_confirm

    assert asks_to_confirm(agent_text) is expected
