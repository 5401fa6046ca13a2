"""Full episodes with scripted users over both transports: the agent, the verifier, the environment, rewards."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from agents.auto_user.models import load_tokenizer
from agents.booking import BookingAgentConfig, Message, RuleAgentConfig
from environment.config import EnvironmentConfig
from environment.conversation import BookingConversationEnvironment, state_is_complete
from environment.objectives import Objective, generate_objectives, load_objectives_jsonl, split_objectives
from environment.scripted_users import BEHAVIOURS, happy_path
from tests.conftest import table_contents


@pytest.fixture(scope="module")
def objectives(template_db: Path) -> list[Objective]:
    return [Objective.from_dict(record) for record in generate_objectives(template_db, 60, seed=0)]


def make_env(template_db: Path, tmp_path: Path, transport: str = "inprocess", worker_id: int = 0,
             **probabilities: float) -> BookingConversationEnvironment:
    config = EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path), max_conversation_length=10,
                               agent=BookingAgentConfig(transport=transport, rule=RuleAgentConfig(**probabilities)))
    return BookingConversationEnvironment(config, worker_id=worker_id)


async def play(env: BookingConversationEnvironment, objective: Objective, messages: list[str], seed: int = 0,
               components: list[dict[str, float]] | None = None):
    """Play ``messages``; the last step (each turn's reward terms appended to ``components``)."""
    env.reset(objective=objective, seed=seed)
    step = None
    for message in messages:
        step = await env.step(message)
        if components is not None:
            components.append(step.reward_components)
        if step.done or step.truncated:
            break
    return step


def feasible(objectives: list[Objective], kind: str | None = None) -> Objective:
    return next(o for o in objectives if o.feasible and (kind is None or o.kind == kind))


@pytest.mark.parametrize("transport", ["inprocess", "mcp"])
@pytest.mark.parametrize("behaviour", ["happy", "missing_slots", "cancel"])
def test_honest_paths_verify(template_db, tmp_path, objectives, transport, behaviour) -> None:
    objective = feasible(objectives, "multi_passenger" if behaviour == "happy" else "feasible")

    async def run():
        env = make_env(template_db, tmp_path, transport)
        step = await play(env, objective, BEHAVIOURS[behaviour](objective))
        await env.aclose()
        return step

    step = asyncio.run(run())
    assert step.done and not step.truncated
    assert step.outcome.hallucinations == () and step.outcome.injected == ()
    if behaviour == "cancel":
        assert step.outcome.verification.booking is None  # cancelled: nothing active
        assert any(c.kind == "cancellation" for c in step.outcome.verification.verified)
    else:
        assert step.outcome.success and step.outcome.verifier_score == 1.0
        assert step.outcome.episode_reward > 0.7


def test_infeasible_objective_ends_politely(template_db, tmp_path, objectives) -> None:
    objective = next(o for o in objectives if not o.feasible)

    async def run():
        env = make_env(template_db, tmp_path)
        step = await play(env, objective, happy_path(objective)[:2] + ["Never mind then, thank you. Goodbye!"])
        await env.aclose()
        return step

    step = asyncio.run(run())
    assert step.done and step.outcome.hallucinations == ()
    assert step.outcome.verifier_score == pytest.approx(0.8)
    assert "no " in step.state.history[2].text.lower() or "couldn't" in step.state.history[2].text.lower()


@pytest.mark.parametrize("transport", ["inprocess", "mcp"])
def test_each_hallucination_mode_is_triggered_and_caught(template_db, tmp_path, objectives, transport) -> None:
    cases = {"phantom_confirmation": "pushy", "stale_details": "changer", "invented_price": "discount",
             "phantom_flight": "phantom_flight"}
    objective = feasible(objectives)

    async def run():
        env = make_env(template_db, tmp_path, transport, p_phantom_confirmation=1.0, p_stale_details=1.0,
                       p_invented_price=1.0, p_phantom_flight=1.0)
        outcomes = {kind: await play(env, objective, BEHAVIOURS[behaviour](objective)) for kind, behaviour in
                    cases.items()}
        await env.aclose()
        return outcomes

    for kind, step in asyncio.run(run()).items():
        assert kind in step.outcome.injected, kind
        assert kind in [k for k, _ in step.outcome.hallucinations], (kind, step.outcome.hallucinations)
        assert step.outcome.verifier_score == 0.0


def test_verifier_catches_all_injected_and_never_false_alarms(template_db, tmp_path, objectives) -> None:
    """Random users and random hallucination draws: detected kinds cover injected kinds; honest => clean."""
    rng = random.Random(7)
    injected_total = honest_total = 0

    async def run():
        nonlocal injected_total, honest_total
        env = make_env(template_db, tmp_path)
        for episode in range(60):
            objective = rng.choice([o for o in objectives if o.feasible])
            behaviour = rng.choice(sorted(BEHAVIOURS))
            step = await play(env, objective, BEHAVIOURS[behaviour](objective), seed=episode)
            injected = set(step.outcome.injected)
            detected = {kind for kind, _ in step.outcome.hallucinations}
            assert injected <= detected, (behaviour, injected, detected)
            if injected:
                injected_total += 1
            else:
                honest_total += 1
                assert detected == set(), (behaviour, detected, [m.text for m in step.state.history])
        await env.aclose()

    asyncio.run(run())
    assert injected_total >= 10 and honest_total >= 10


def test_consistent_user_almost_never_triggers(template_db, tmp_path, objectives) -> None:
    async def run():
        env = make_env(template_db, tmp_path)
        steps = [await play(env, o, happy_path(o), seed=i) for i, o in enumerate(objectives[:20]) if o.feasible]
        await env.aclose()
        return steps

    steps = asyncio.run(run())
    assert sum(bool(s.outcome.injected) for s in steps) == 0
    assert sum(s.outcome.success for s in steps) >= 0.8 * len(steps)


INJECTIONS = ["'; DROP TABLE bookings; --", "Robert'); DELETE FROM flights; --", "x' OR '1'='1",
              "My name is Bobby'); DROP TABLE passengers;--", "book ZZ9999' OR 1=1 --"]


@pytest.mark.parametrize("transport", ["inprocess", "mcp"])
def test_hostile_and_odd_user_text(template_db, tmp_path, objectives, transport) -> None:
    objective = feasible(objectives)
    odd = ["", "   ", "asdkjh qwpoeiru zmxncb", "!!!???", "\x00\x01\x02", "a" * 500, "word " * 100,
           "🚀✈️🛫 ñandú 東京", "None", "{\"role\": \"system\"}"] + INJECTIONS

    async def run():
        env = make_env(template_db, tmp_path, transport, p_phantom_confirmation=0.0, p_stale_details=0.0,
                       p_invented_price=0.0, p_phantom_flight=0.0)
        env.reset(objective=objective, seed=1)
        before = table_contents(env.database.path)
        replies = []
        for text in odd:
            if env.state.truncated or env.state.done:
                env.reset(objective=objective, seed=1)
            step = await env.step(text)
            replies.append(step.state.history[-1])
        after = table_contents(env.database.path)
        await env.aclose()
        return before, after, replies

    before, after, replies = asyncio.run(run())
    assert before == after  # nothing written, nothing dropped
    for reply in replies:
        assert reply.role == "agent" and reply.text.strip()
    assert "didn't catch" in replies[0].text


def test_format_state_is_markovian_and_complete(template_db, tmp_path, objectives) -> None:
    objective = feasible(objectives)

    async def run():
        first, second = make_env(template_db, tmp_path, worker_id=1), make_env(template_db, tmp_path, worker_id=2)
        strings = []
        for env in (first, second):
            env.reset(objective=objective, seed=3)
            for message in happy_path(objective)[:3]:
                await env.step(message)
            strings.append(env.format_state())
        complete = state_is_complete(first.state, strings[0])
        await first.aclose()
        await second.aclose()
        return strings, complete, first.state

    (one, two), complete, state = asyncio.run(run())
    assert one == two
    assert complete
    assert objective.text in one and "Turn: 4 of 10" in one and state.history[-1].text in one
    assert one.rstrip().endswith("User:")


def test_reset_isolates_episodes(template_db, tmp_path, objectives) -> None:
    objective = feasible(objectives)

    async def run():
        env = make_env(template_db, tmp_path)
        first = await play(env, objective, happy_path(objective))
        after_first = table_contents(env.database.path)["bookings"]
        env.reset(objective=objective)
        after_reset = table_contents(env.database.path)["bookings"]
        await env.aclose()
        return first, after_first, after_reset

    first, after_first, after_reset = asyncio.run(run())
    assert first.outcome.success and len(after_first) == 1 and after_reset == []


def test_truncation_is_distinct_from_done(template_db, tmp_path, objectives) -> None:
    async def run():
        env = make_env(template_db, tmp_path)
        env.reset(objective=objectives[0])
        steps = [await env.step("hmm, let me think about it") for _ in range(10)]
        await env.aclose()
        return steps

    steps = asyncio.run(run())
    assert steps[-1].truncated and not steps[-1].done
    assert not any(s.truncated for s in steps[:-1])
    assert steps[-1].outcome is not None


def test_objectives_dataset_split_and_jsonl(template_db, tmp_path) -> None:
    dataset = generate_objectives(template_db, 200, seed=0)
    again = generate_objectives(template_db, 200, seed=0)
    assert dataset.to_list() == again.to_list()
    infeasible = sum(not r["feasible"] for r in dataset)
    assert 8 <= infeasible <= 35
    assert {"feasible", "multi_passenger", "budget", "infeasible"} <= set(dataset["kind"])
    train, held_out = split_objectives(dataset, 0.2, seed=0)
    assert len(held_out) == 40 and not set(train["objective_id"]) & set(held_out["objective_id"])
    path = tmp_path / "objectives.jsonl"
    import json

    path.write_text(json.dumps({k: v for k, v in dataset[0].items() if k != "text"}) + "\n")
    (loaded,) = load_objectives_jsonl(path)
    assert loaded.text == dataset[0]["text"]
    path.write_text('{"origin": "BOS", "bogus": 1}\n')
    with pytest.raises(ValueError, match="bogus"):
        load_objectives_jsonl(path)


def test_bare_name_answers_the_name_question(template_db, tmp_path, objectives) -> None:
    """After "May I have the lead passenger's full name?", "Tara Novak." is an answer; before it, it is not."""
    objective = feasible(objectives)
    script = happy_path(objective)
    bare = [script[0], "The first one please.", f"{objective.passenger_name}.", "Yes, please book it.", "Bye!"]

    async def run():
        env = make_env(template_db, tmp_path)
        components = []
        step = await play(env, objective, bare, components=components)
        name_turn = components[2]
        env.reset(objective=objective)
        await env.step(f"{objective.passenger_name}.")  # nobody asked for a name yet
        early_slots = dict(env.agent.slots)
        await env.aclose()
        return step, early_slots, name_turn

    step, early_slots, name_turn = asyncio.run(run())
    assert step.outcome.success, [m.text for m in step.state.history]
    assert "passenger_name" not in early_slots
    # The reward reads the answer the way the agent does: the bare name is conveyed progress (and a wrong one drifts).
    assert name_turn["progress"] == pytest.approx(0.15) and name_turn["goal_drift"] == 0.0


def test_walking_away_from_a_bookable_objective_answers_nothing(template_db, tmp_path, objectives) -> None:
    """Round 8's trained users said "Thank you." to the name question, which ended the episode at no cost. Now
    that goodbye is unanswered; the same words after the booking, or on an infeasible objective, are the polite
    ending."""
    objective = feasible(objectives)
    infeasible = next(o for o in objectives if not o.feasible)
    opening = happy_path(objective)[0]

    async def run():
        env = make_env(template_db, tmp_path)
        quit_early, booked_then_bye, no_flights = [], [], []
        walked = await play(env, objective, [opening, "The first one please.", "Thank you."], components=quit_early)
        finished = await play(env, objective, [opening, "The first one please.", f"{objective.passenger_name}.",
                                               "Yes, please book it.", "Yes, please book it.", "Thank you."],
                              components=booked_then_bye)
        gave_up = await play(env, infeasible, [happy_path(infeasible)[0], "Thank you."], components=no_flights)
        await env.aclose()
        return walked, quit_early, finished, booked_then_bye, gave_up, no_flights

    walked, quit_early, finished, booked_then_bye, gave_up, no_flights = asyncio.run(run())
    history = [m.text for m in walked.state.history]
    assert walked.done and "name" in history[-2].lower(), history  # it ended at the name question
    penalty = EnvironmentConfig().reward.unanswered_penalty
    assert quit_early[-1]["unanswered"] == -penalty and quit_early[-1]["polite_ending"] == 0.0
    assert finished.outcome.success and finished.done, [m.text for m in finished.state.history]
    assert booked_then_bye[-1]["unanswered"] == 0.0 and booked_then_bye[-1]["polite_ending"] == 0.5
    assert gave_up.done and no_flights[-1]["unanswered"] == 0.0 and no_flights[-1]["polite_ending"] == 0.5


def test_booking_stage_reward_marks_the_turns_that_moved_the_booking(template_db, tmp_path, objectives) -> None:
    """+stage_reward on the turn whose answer searched the objective's route, and on the turn that booked it."""
    objective = feasible(objectives)
    other = next(o for o in objectives if o.feasible and (o.origin, o.destination) != (objective.origin,
                                                                                       objective.destination))
    script = [happy_path(objective)[0], "The first one please.", f"{objective.passenger_name}.",
              "Yes, please book it.", "Yes, please book it.", "Thanks, bye!"]

    async def run():
        env = make_env(template_db, tmp_path)
        components = []
        step = await play(env, objective, script, components=components)
        stages = [c["booking_stage"] for c in components]
        wrong_route = await play(env, other, [happy_path(objective)[0]])  # searches a route `other` doesn't want
        await env.aclose()
        return step, stages, wrong_route

    step, stages, wrong_route = asyncio.run(run())
    assert step.outcome.success, [m.text for m in step.state.history]
    stage = EnvironmentConfig().reward.stage_reward
    assert stages == [stage, 0.0, 0.0, stage, 0.0, 0.0]
    assert wrong_route.reward_components["booking_stage"] == 0.0


def test_yes_accepts_the_only_flight_on_offer(template_db, tmp_path, objectives) -> None:
    """With one search result, "Yes, that works." chooses it; with several it chooses nothing."""

    async def run():
        env = make_env(template_db, tmp_path)
        outcomes = {}
        for objective in [o for o in objectives if o.feasible and o.kind == "feasible"]:
            env.reset(objective=objective, seed=1)
            await env.step(happy_path(objective)[0])
            count = len(env.agent.results)
            if count in outcomes:
                continue
            await env.step("Yes, that works.")
            outcomes[count] = (env.agent.selected, env.state.history[-1].text)
            if count == 1:
                for message in (f"{objective.passenger_name}.", "Yes, please book it.", "Thanks, bye!"):
                    step = await env.step(message)
                outcomes["booked"] = step.outcome.success
            if 1 in outcomes and any(isinstance(k, int) and k > 1 for k in outcomes):
                break
        await env.aclose()
        return outcomes

    outcomes = asyncio.run(run())
    single, reply = outcomes[1]
    assert single is not None and "name" in reply
    assert outcomes["booked"]
    several = [value for key, value in outcomes.items() if isinstance(key, int) and key > 1]
    assert several and all(selected is None for selected, _ in several)


@pytest.mark.parametrize("template", ["plain", "chat"])
def test_long_states_drop_old_messages_and_keep_their_head(template_db, tmp_path, objectives, template) -> None:
    """A conversation far longer than the token budget: every state fits, and none loses the objective, the booking
    context, the turn or the latest message (checked on the tokens the policy receives)."""
    from agents.auto_user.generation import encode_query
    from agents.auto_user.models import resolve_model

    tokenizer = load_tokenizer(resolve_model("tiny-llama", tmp_path / "models"))
    budget = 300
    config = EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path), max_conversation_length=12,
                               history_window=20, state_template=template)
    objective = feasible(objectives)
    chatty = [f"{line} Also, I have a long story about my trip that I want to tell you in great detail today."
              for line in happy_path(objective)[:4]] * 3

    async def run() -> list[tuple[str, bool, int]]:
        env = BookingConversationEnvironment(config, tokenizer=tokenizer, max_state_tokens=budget)
        unlimited = BookingConversationEnvironment(config, worker_id=1, tokenizer=tokenizer)
        env.reset(objective=objective, seed=0)
        unlimited.reset(objective=objective, seed=0)
        seen = []
        for message in chatty:
            step = await env.step(message)
            await unlimited.step(message)
            if step.done or step.truncated:
                break
            state = env.format_state()
            policy_sees = tokenizer.decode(encode_query(tokenizer, state, budget))
            seen.append((policy_sees, env.state_is_complete(state), env.count_tokens(unlimited.format_state())))
            assert env.state.history[-1].text[:100] in policy_sees  # the latest message survives
        await env.aclose()
        await unlimited.aclose()
        return seen

    seen = asyncio.run(run())
    assert max(untrimmed for _, _, untrimmed in seen) > 2 * budget  # the test really overflows
    for policy_sees, complete, _ in seen:
        assert complete
        assert objective.text in policy_sees and "Booking context:" in policy_sees


def test_a_huge_latest_message_is_shortened_not_the_head(template_db, tmp_path, objectives) -> None:
    from agents.auto_user.models import resolve_model

    tokenizer = load_tokenizer(resolve_model("tiny-gpt2", tmp_path / "models"))
    env = BookingConversationEnvironment(EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path)),
                                         tokenizer=tokenizer, max_state_tokens=200)
    objective = feasible(objectives)
    env.reset(objective=objective, seed=0)
    env.state.history.append(Message("agent", "Let me explain our policies. " * 400))
    state = env.format_state()
    assert env.count_tokens(state) <= 200 and objective.text in state and state.rstrip().endswith("User:")
    asyncio.run(env.aclose())


def test_a_one_message_window_shows_the_latest_agent_message_and_never_the_users_own(template_db, tmp_path,
                                                                                      objectives) -> None:
    """history_window 1 (the main recipe): the policy sees the objective, the context, the turn and the agent's latest
    message, and not its own earlier words (which a small base model copies)."""
    config = EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path), history_window=1)
    objective = feasible(objectives)

    async def run() -> tuple[str, str, str]:
        env = BookingConversationEnvironment(config)
        env.reset(objective=objective, seed=0)
        first = happy_path(objective)[0]
        await env.step(first)
        state, latest = env.format_state(), env.state.history[-1]
        await env.aclose()
        return first, state, latest.text if latest.role == "agent" else ""

    first, state, latest_agent_message = asyncio.run(run())
    assert latest_agent_message and latest_agent_message in state
    assert first not in state and objective.text in state and "Turn: 2 of" in state and "Booking context:" in state
