"""Scripted users for environment tests: each returns the list of user messages for an objective."""

from __future__ import annotations

import random
from datetime import date

from environment.objectives import Objective


def spoken_date(objective: Objective) -> str:
    day = date.fromisoformat(objective.date)
    return f"{day.strftime('%B')} {day.day}"


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


def phantom_flight_asker(objective: Objective) -> list[str]:
    return [
        f"I want to fly from {objective.origin_city} to {objective.destination_city} on {objective.date}.",
        "Can I get flight ZZ123 instead?",
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
