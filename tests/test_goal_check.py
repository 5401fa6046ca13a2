"""``environment.goal_check``: the booking context line says what the agent's latest search got wrong about the
goal (the party size, cabin or date it assumed) until the user corrects it, through a real environment and the rule
agent; the demonstrators correct exactly what it names."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date, timedelta
from pathlib import Path

import pytest

from agents.booking import BookingAgentConfig
from environment.config import EnvironmentConfig
from environment.conversation import BookingConversationEnvironment
from environment.goal_check import Mismatch, Search, search_mismatches


def _context_line(state: str) -> str:
    return next(line for line in state.splitlines() if line.startswith("Booking context: "))


def test_search_mismatches_name_each_detail_the_objective_does_not_accept(objectives) -> None:
    objective = dataclasses.replace(objectives[0], passengers=3, cabin="business", flexible_days=1)
    day = date.fromisoformat(objective.date)
    search = Search(objective.origin, objective.destination, objective.date, "economy", 1, 2)
    assert search_mismatches(objective, search) == [Mismatch("passengers", 1, 3), Mismatch("cabin", "economy",
                                                                                            "business")]
    within = dataclasses.replace(search, passengers=3, cabin="business", date=(day + timedelta(days=1)).isoformat())
    assert search_mismatches(objective, within) == []  # a date within the objective's flexibility passes
    outside = dataclasses.replace(within, date=(day + timedelta(days=2)).isoformat())
    assert search_mismatches(objective, outside) == [Mismatch("date", outside.date, objective.date)]
    assert Mismatch("passengers", 1, 3).describe() == "1 passenger (you want 3)"
    assert Mismatch("cabin", "economy", "first").describe() == "economy (you want first)"


def test_the_state_names_an_assumed_party_size_until_the_user_corrects_it(template_db: Path, objectives,
                                                                           tmp_path: Path) -> None:
    objective = next(o for o in objectives if o.feasible and o.passengers > 1 and o.cabin == "economy")
    states: dict[bool, list[str]] = {}
    for check in (True, False):
        config = EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path / str(check)), goal_check=check,
                                   agent=BookingAgentConfig(transport="inprocess"))
        env = BookingConversationEnvironment(config)
        env.reset(objective=objective, seed=0)

        async def run(env: BookingConversationEnvironment) -> list[str]:
            seen = [env.format_state()]
            # The route and date only: the rule agent assumes 1 passenger and searches.
            await env.step(f"I'd like to fly from {objective.origin} to {objective.destination} on {objective.date}.")
            seen.append(env.format_state())
            await env.step(f"Sorry, it's for {objective.passengers} passengers.")
            seen.append(env.format_state())
            return seen

        states[check] = asyncio.run(run(env))
        asyncio.run(env.aclose())
    before, assumed, corrected = (_context_line(state) for state in states[True])
    assert "not your goal" not in before
    assert assumed.endswith(f"; not your goal: 1 passenger (you want {objective.passengers})"), assumed
    assert "not your goal" not in corrected and f"{objective.passengers} passenger(s)" in corrected, corrected
    assert not any("not your goal" in state for state in states[False])  # off (the default): no note
    assert [_context_line(s) for s in states[False]][1] == assumed.split("; not your goal")[0]


def test_demonstrators_correct_what_the_goal_check_names(template_db: Path, objectives, tmp_path: Path) -> None:
    """Warm-start data agrees with the state: every demonstrated turn whose state carries a "not your goal" note
    corrects a detail the note names (and no note is left unanswered), for every demonstrator style."""
    from agents.nlu import parse_message
    from environment.demonstrators import DEMONSTRATOR_STYLES, ReactiveDemonstrator
    from environment.goal_check import pending_search

    config = EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path), goal_check=True,
                               agent=BookingAgentConfig(transport="inprocess"))
    env = BookingConversationEnvironment(config)
    wrong = [o for o in objectives if o.feasible and (o.passengers > 1 or o.cabin != "economy")][:6]
    noted = 0

    async def play(demonstrator: ReactiveDemonstrator) -> None:
        nonlocal noted
        while True:
            state_text = env.format_state()
            message = demonstrator(env.state)
            if "not your goal" in _context_line(state_text):
                noted += 1
                search = pending_search(env.state, env.today)
                mismatches = search_mismatches(env.state.objective, search)
                slots = parse_message(message, {}, env.today).slots()
                named = {m.detail for m in mismatches}
                assert named & set(slots), (state_text, message)
                assert all(env.state.objective.detail_matches(key, slots[key]) for key in named & set(slots))
            step = await env.step(message)
            if step.done or step.truncated:
                return

    for index, objective in enumerate(wrong):
        for style in DEMONSTRATOR_STYLES:
            env.reset(objective=objective, seed=index)
            asyncio.run(play(ReactiveDemonstrator(env.today, style=style, seed=index)))
    asyncio.run(env.aclose())
    assert noted >= len(wrong)  # the stepwise style never volunteers, so the agent assumes and gets corrected


def test_after_an_empty_search_the_state_names_the_dates_left_to_try(template_db: Path, objectives,
                                                                      tmp_path: Path) -> None:
    """A matching search that found nothing: the note lists the dates within the objective's flexibility that no
    message or search has tried (nearest first), drops each once it is asked for, and says when none is left."""
    infeasible = next(o for o in objectives if not o.feasible and o.passengers == 1 and o.cabin == "economy")
    objective = dataclasses.replace(infeasible, flexible_days=1)
    day = date.fromisoformat(objective.date)
    before, after = ((day + timedelta(days=offset)).isoformat() for offset in (-1, 1))
    config = EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path), goal_check=True,
                               agent=BookingAgentConfig(transport="inprocess"))
    env = BookingConversationEnvironment(config)

    async def run(messages: list[str]) -> list[str]:
        lines = []
        for message in messages:
            await env.step(message)
            lines.append(_context_line(env.format_state()))
        return lines

    env.reset(objective=objective, seed=0)
    trip = f"From {objective.origin} to {objective.destination} on {objective.date}, economy, just me."
    first, = asyncio.run(run([trip]))
    assert ": 0 flight(s)" in first, first
    expected = [d for d in (before, after) if d > env.today.isoformat()]
    assert first.endswith(f"; no flights: dates you could still try {', '.join(expected)}"), first

    env.reset(objective=dataclasses.replace(objective, flexible_days=0), seed=0)
    only, = asyncio.run(run([trip]))
    assert only.endswith("; no flights: no other date fits your goal"), only
    asyncio.run(env.aclose())


def test_demonstrators_end_politely_when_no_date_is_left(template_db: Path, objectives, tmp_path: Path) -> None:
    """Every demonstrated state whose note says no date is left is answered by a goodbye; one that lists dates is
    answered by asking for the first of them."""
    from agents.nlu import parse_message
    from environment.demonstrators import DEMONSTRATOR_STYLES, ReactiveDemonstrator

    config = EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path), goal_check=True,
                               agent=BookingAgentConfig(transport="inprocess"))
    env = BookingConversationEnvironment(config)
    notes = {"none left": 0, "dates": 0}

    async def play(demonstrator: ReactiveDemonstrator) -> None:
        while True:
            line = _context_line(env.format_state())
            message = demonstrator(env.state)
            parsed = parse_message(message, {}, env.today)
            if line.endswith("no other date fits your goal"):
                notes["none left"] += 1
                assert parsed.goodbye or parsed.give_up, (line, message)
            elif "dates you could still try " in line:
                notes["dates"] += 1
                assert parsed.date == line.split("dates you could still try ")[1].split(",")[0], (line, message)
            step = await env.step(message)
            if step.done or step.truncated:
                return

    infeasible = [o for o in objectives if not o.feasible][:4]
    for index, objective in enumerate(infeasible + [dataclasses.replace(o, flexible_days=1) for o in infeasible]):
        for style in DEMONSTRATOR_STYLES:
            env.reset(objective=objective, seed=index)
            asyncio.run(play(ReactiveDemonstrator(env.today, style=style, seed=index)))
    asyncio.run(env.aclose())
    assert notes["none left"] >= len(infeasible) and notes["dates"] >= 1, notes


def test_the_note_can_be_the_line_right_before_the_reply(template_db: Path, objectives, tmp_path: Path) -> None:
    """``goal_check_placement: last_line`` moves the same note from the booking context line to a "Goal check:"
    line after the agent's latest message, the last line before "User:"; the state is otherwise unchanged."""
    objective = next(o for o in objectives if o.feasible and o.passengers > 1 and o.cabin == "economy")
    states: dict[str, str] = {}
    for placement in ("context", "last_line"):
        config = EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path / placement), goal_check=True,
                                   goal_check_placement=placement, agent=BookingAgentConfig(transport="inprocess"))
        env = BookingConversationEnvironment(config)
        env.reset(objective=objective, seed=0)
        asyncio.run(env.step(f"I'd like to fly from {objective.origin} to {objective.destination} on "
                             f"{objective.date}."))
        states[placement] = env.format_state()
        asyncio.run(env.aclose())
    note = f"not your goal: 1 passenger (you want {objective.passengers})"
    lines = states["last_line"].splitlines()
    assert lines[-2:] == [f"Goal check: {note}", "User:"], lines[-3:]
    assert "not your goal" not in _context_line(states["last_line"])
    assert states["last_line"].replace(f"\nGoal check: {note}", "") == states["context"].replace(f"; {note}", "")


def test_an_unknown_placement_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match="goal_check_placement must be one of"):
        EnvironmentConfig(goal_check_placement="top")
