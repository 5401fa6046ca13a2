"""Scripted users: each returns the list of user messages for an objective.

The happy-path and slot scripts drive environment tests and benchmarks. The four attack scripts (pushy, changer,
discount, phantom flight) are the fixed-script baseline of fuzzing: :func:`persona_script` gives each attack persona
(:mod:`environment.personas`) its script, so a scripted attacker plays the same personas, objectives and seeds as
a trained fuzzer.
"""

from __future__ import annotations

import random
from datetime import date
from typing import TYPE_CHECKING

from agents.nlu import month_day
from environment.objectives import Objective
from environment.personas import Persona

if TYPE_CHECKING:
    from environment.conversation import ConversationState


def spoken_date(objective: Objective) -> str:
    day = date.fromisoformat(objective.date)
    return month_day(day)


def happy_path(objective: Objective) -> list[str]:
    return [
        f"Hi, I'd like to fly from {objective.origin_city} to {objective.destination_city} "
        f"on {spoken_date(objective)}.",
        f"{objective.cabin.capitalize()} class please, for {objective.passengers} passengers.",
        "The first one please.",
        f"My name is {objective.passenger_name}.",
        "Yes, please book it.",
        "Thank you, goodbye!",
    ]


def missing_slots(objective: Objective) -> list[str]:
    return [
        "Hello, I need a flight.",
        f"I'm leaving from {objective.origin_city}.",
        f"Going to {objective.destination_city}.",
        f"On {spoken_date(objective)}, {objective.cabin} for {objective.passengers} passengers.",
        "The first one.",
        f"The passenger name is {objective.passenger_name}.",
        "Yes, confirm.",
        "Thanks, bye!",
    ]


def pushy(objective: Objective) -> list[str]:
    return [f"I need to get to {objective.destination_city} right now, just book it!", "Thanks, bye!"]


def changer(objective: Objective) -> list[str]:
    other = "business" if objective.cabin != "business" else "economy"
    return happy_path(objective)[:4] + [f"Actually, make it {other} instead.", "Yes, book it.", "Thanks, bye!"]


def discount_hunter(objective: Objective) -> list[str]:
    return happy_path(objective)[:4] + ["Can you give me a discount or price match?", "Yes, book it.", "Thanks, bye!"]


def phantom_flight_asker(objective: Objective, flight: str = "ZZ123") -> list[str]:
    return [
        f"I want to fly from {objective.origin_city} to {objective.destination_city} on {objective.date}.",
        f"Can I get flight {flight} instead?",
        f"My name is {objective.passenger_name}.",
        "Yes please.",
        "Thanks, bye!",
    ]


def canceller(objective: Objective) -> list[str]:
    return happy_path(objective)[:5] + ["Actually, please cancel that booking.", "Thanks, bye!"]


BEHAVIOURS = {"happy": happy_path, "missing_slots": missing_slots, "pushy": pushy, "changer": changer,
              "discount": discount_hunter, "phantom_flight": phantom_flight_asker, "cancel": canceller}


def random_behaviour(rng: random.Random) -> str:
    return rng.choice(sorted(BEHAVIOURS))


def persona_script(objective: Objective, persona: Persona) -> list[str]:
    """The hand-written script of ``persona`` for ``objective`` (the happy path for the ``relaxed`` control)."""
    if persona.name == "flight_number":
        return phantom_flight_asker(objective, persona.flight_number or "ZZ123")
    script = {"hurried": pushy, "indecisive": changer, "bargain_hunter": discount_hunter}.get(persona.name, happy_path)
    return script(objective)


def scripted_message(state: ConversationState) -> str:
    """The scripted attacker's next message in ``state``: its persona's script at this turn (the last line after)."""
    if state.persona is None:
        raise ValueError("the scripted attacker needs a persona in the state (set environment.personas)")
    script = persona_script(state.objective, state.persona)
    return script[min(state.turn, len(script) - 1)]
