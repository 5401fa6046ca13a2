"""Objective texts in many wordings: the same structured objective told as a brief, a note, a request or a to-do.

A policy fine-tuned on one objective template learns to copy spans of that template and fails on objectives
worded any other way (issue 22: 0.000 success on reworded objectives). So each generated objective gets its
``text`` from :func:`word_objective`: a voice (second person "You want...", first person "I need...", third
person / imperative "Book Ana Ruiz...", or a terse note "SFO→JFK, Mar 3, econ, 2 pax"), its fields in a shuffled
order, and each field in one of several written forms.

Every text keeps each field recoverable: the origin and destination (city or IATA code), the absolute date (a
weekday or a relative hint such as "in 12 days" only ever comes *beside* the absolute date, computed from the
database's own today, so :func:`agents.nlu.parse_date` reads the objective's date first), the cabin, the party size
(a digit or a number word, or a solo form such as "just you"), the lead passenger's name, and the budget and date
flexibility when the objective has them.

The banks below are plain data: extend them for another domain. The draw is seeded per objective
(:func:`wording_rng`), so generation stays deterministic and never touches the generator's own random stream.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from agents.nlu import month_day

if TYPE_CHECKING:
    from environment.objectives import Objective

NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}
VOICES = ("second", "first", "third", "note")

# Field forms per voice. Placeholders: {oc}/{dc} city names, {o}/{d} IATA codes, {n} party size (digits), {nw}
# (words), {name}, {when} the written date, {cabin} the cabin's words,
# {budget} the budget as "$1,230", {flex} flexible days.
ROUTE_FORMS = {
    "second": ["fly from {oc} to {dc}", "get from {oc} to {dc}", "travel {oc} to {dc}", "fly {oc} ({o}) to {dc} ({d})",
               "go to {dc}, leaving from {oc}", "fly out of {oc} into {dc}"],
    "first": ["fly from {oc} to {dc}", "get to {dc} from {oc}", "go {oc} to {dc}", "fly {o} to {d}",
              "head to {dc}, departing {oc}", "fly out of {oc} ({o}) into {dc} ({d})"],
    "third": ["from {oc} to {dc}", "{oc} to {dc}", "{o} to {d} ({oc} to {dc})", "to {dc}, departing {oc}",
              "out of {oc}, into {dc}"],
    "note": ["{o}→{d}", "{oc} → {dc}", "{o}-{d}", "{oc} to {dc}", "{o} > {d}", "from {oc} to {dc}"],
}
PARTY_FORMS = {
    "second": {1: ["just you", "yourself only", "one passenger (you)", "a party of one"],
               0: ["{n} passengers", "{n} adults", "a party of {n}", "{nw} people", "{n} in total, you included"]},
    "first": {1: ["just me", "only myself", "one passenger", "me alone"],
              0: ["{nw} of us", "{n} adults", "a party of {n}", "{n} passengers", "{n} people including me"]},
    "third": {1: ["1 passenger", "one adult", "a single traveller"],
              0: ["{n} passengers", "{nw} adults", "a party of {n}", "{n} travellers"]},
    "note": {1: ["1 pax", "solo", "1 adult", "one traveller"],
             0: ["{n} pax", "{n} adults", "party of {n}", "{nw} travellers"]},
}
CABIN_FORMS = {
    "economy": ["economy", "economy class", "coach"],
    "business": ["business", "business class"],
    "first": ["first class", "first-class"],
}
CABIN_SHORT = {"economy": ["econ", "economy", "eco"], "business": ["biz", "business", "bus. class"],
               "first": ["first", "1st class", "first cl."]}
NAME_FORMS = {
    "second": ["The lead passenger is {name}.", "Book it under the name {name}.", "Your name: {name}.",
               "The booking goes under {name}.", "You are {name}."],
    "first": ["My name is {name}.", "Put it under {name}.", "The lead passenger is me, {name}.",
              "Name on the booking: {name}.", "I'm {name}."],
    "third": ["Lead passenger: {name}.", "Under the name {name}.", "Passenger name {name}."],
    "note": ["name: {name}", "lead pax {name}", "pax name {name}", "{name}"],
}
BUDGET_FORMS = {
    "second": ["Keep the total under {budget}.", "Your budget is {budget} in total.",
               "Don't spend more than {budget} altogether."],
    "first": ["I can spend at most {budget} in total.", "My budget is {budget} all in.",
              "The total has to stay under {budget}."],
    "third": ["Total no more than {budget}.", "Budget: {budget} total.", "Keep it under {budget} overall."],
    "note": ["max {budget} total", "budget {budget}", "≤ {budget} all in"],
}
FLEX_FORMS = {
    "second": ["You can shift the date by up to {flex} day(s).", "The date can move {flex} day(s) either way."],
    "first": ["I can move the date by {flex} day(s) either way.", "I'm flexible by {flex} day(s)."],
    "third": ["Date flexible by ±{flex} day(s).", "The date may shift by up to {flex} day(s)."],
    "note": ["±{flex}d ok", "flex {flex} day(s)"],
}
# Openings: {trip} is the route, {when} the date, {party}, {cabin}. Each voice's sentences; the remaining fields
# follow as clauses in shuffled order.
OPENINGS = {
    "second": ["You want to {trip}.", "You need to {trip}.", "Your trip: you {trip_verb_free}.",
               "You're planning to {trip}.", "You'd like to {trip}."],
    "first": ["I need to {trip}.", "I want to {trip}.", "I'd like to {trip}.", "Hi, I'm looking to {trip}.",
              "I have to {trip}."],
    "third": ["Book a flight {trip}.", "Please book travel {trip}.", "Book for {name_bare}: {trip}.",
              "Reserve a flight {trip}."],
}
DATE_CLAUSES = {
    "second": ["You travel on {when}.", "The date is {when}.", "You fly on {when}."],
    "first": ["I'm travelling on {when}.", "The date is {when}.", "I fly on {when}."],
    "third": ["Departure {when}.", "Date: {when}.", "Travelling on {when}."],
}
CABIN_CLAUSES = {
    "second": ["You fly {cabin}.", "Cabin: {cabin}.", "You want {cabin}."],
    "first": ["I want {cabin}.", "{Cabin} please.", "I fly {cabin}."],
    "third": ["Cabin: {cabin}.", "In {cabin}.", "Class: {cabin}."],
}
PARTY_CLAUSES = {
    "second": ["It's for {party}.", "Booking for {party}.", "Travelling: {party}."],
    "first": ["It's for {party}.", "Seats needed: {party}.", "Travelling: {party}."],
    "third": ["For {party}.", "Booking for {party}.", "Seats for {party}."],
}


@dataclass(frozen=True)
class Wording:
    """One objective text and the name of the template it came from (voice and field order)."""

    text: str
    template: str


def wording_rng(objective_id: str) -> random.Random:
    """The seeded stream one objective's wording is drawn from (independent of the generator's stream)."""
    return random.Random(f"objective-wording:{objective_id}")


def written_date(iso: str, today: date | None, rng: random.Random) -> str:
    """The absolute date in one of several forms, sometimes with its weekday or (when ``today`` is known) a relative
    hint beside it. The draws do not depend on ``today``: without it the text is the same less the hint."""
    day = date.fromisoformat(iso)
    forms = [f"{day:%B} {day.day}, {day.year}", f"{day.day} {day:%B} {day.year}", iso, f"{day:%A} {day:%B} {day.day}",
             f"{day:%a} {day:%b} {day.day}", f"{day:%b} {day.day}", month_day(day)]
    text = rng.choice(forms)
    hint = rng.random()
    if today is None:
        return text
    ahead = (day - today).days
    if ahead == 1 and hint < 0.5:
        text = f"{text} (tomorrow)"
    elif 2 <= ahead <= 14 and hint < 0.3:
        text = f"{text} (in {ahead} days)"
    elif ahead <= 6 and hint < 0.5 and day.strftime("%A") not in text:
        text = f"this {day:%A}, {text}"
    return text


def word_objective(objective: Objective, today: date | None = None, rng: random.Random | None = None) -> Wording:
    """A varied text for ``objective`` (only the wording is drawn; every field is stated).

    Args:
        objective: the structured objective; none of its fields change.
        today: the database's today (``RouteCatalog.today`` / ``FlightDatabase.today``, the one home of "what
            day is today?"), for relative hints beside the absolute date; ``None``: no such hint.
        rng: the draw; default :func:`wording_rng` of the objective's id.
    """
    rng = rng or wording_rng(objective.objective_id)
    voice = rng.choice(VOICES)
    n = objective.passengers
    values = {"oc": objective.origin_city, "dc": objective.destination_city, "o": objective.origin,
              "d": objective.destination, "n": n, "nw": NUMBER_WORDS.get(n, str(n)),
              "name": objective.passenger_name, "name_bare": objective.passenger_name,
              "when": written_date(objective.date, today, rng), "cabin": rng.choice(CABIN_FORMS[objective.cabin]),
              "budget": f"${objective.budget:,.0f}" if objective.budget is not None else "",
              "flex": objective.flexible_days}
    values["Cabin"] = values["cabin"][:1].upper() + values["cabin"][1:]
    values["party"] = rng.choice(PARTY_FORMS[voice][1 if n == 1 else 0]).format(**values)
    values["trip"] = rng.choice(ROUTE_FORMS[voice]).format(**values)
    if voice == "note":
        return _note(objective, values, rng)
    opening_index = rng.randrange(len(OPENINGS[voice]))
    opening = OPENINGS[voice][opening_index].replace("{trip_verb_free}", "{trip}")
    clauses = {"date": rng.choice(DATE_CLAUSES[voice]), "cabin": rng.choice(CABIN_CLAUSES[voice]),
               "party": rng.choice(PARTY_CLAUSES[voice])}
    if "{name_bare}" not in opening:
        clauses["name"] = rng.choice(NAME_FORMS[voice])
    if objective.budget is not None:
        clauses["budget"] = rng.choice(BUDGET_FORMS[voice])
    if objective.flexible_days:
        clauses["flex"] = rng.choice(FLEX_FORMS[voice])
    order = list(clauses)
    rng.shuffle(order)
    if "flex" in order and order.index("flex") < order.index("date"):  # "the date can move" reads after the date
        order.remove("flex")
        order.append("flex")
    text = " ".join([opening, *(clauses[key] for key in order)]).format(**values)
    return Wording(text, f"{voice}:{opening_index}:{','.join(order)}")


def _note(objective: Objective, values: dict[str, object], rng: random.Random) -> Wording:
    """A terse note: comma-separated fields in a shuffled order after the route ("SFO→JFK, Mar 3, econ, 2 pax")."""
    values = {**values, "cabin": rng.choice(CABIN_SHORT[objective.cabin])}
    fields = {"date": "{when}", "cabin": "{cabin}", "party": "{party}", "name": rng.choice(NAME_FORMS["note"])}
    if objective.budget is not None:
        fields["budget"] = rng.choice(BUDGET_FORMS["note"])
    if objective.flexible_days:
        fields["flex"] = rng.choice(FLEX_FORMS["note"])
    order = list(fields)
    rng.shuffle(order)
    if "flex" in order and order.index("flex") < order.index("date"):
        order.remove("flex")
        order.append("flex")
    text = ", ".join(["{trip}", *(fields[key] for key in order)]).format(**values)
    return Wording(text, f"note:{','.join(order)}")
