"""Builds ``results/heldout_rewordings.jsonl``: held-out objectives worded in a user's own way, for evaluation.

A policy can look good on the generator's wordings and still fail on how a person writes a request (issue 22).
This file takes 24 objectives from the HELD-OUT split of the default run (default database, ``objectives_seed``
0, 500 objectives, 20 % held out; :func:`environment.objectives.load_objectives`), six of each kind where the
split has them, keeps every structured field, and rewrites only ``text`` in styles the generator's bank
(:mod:`environment.objective_wordings`) never uses: lower-case run-on sentences, chat abbreviations, fields in
reverse order, a request about someone else, a question, an itinerary with "dest"/"orig" labels::

    python -m training.heldout_rewordings [--out results/heldout_rewordings.jsonl]

Evaluate on it with ``evaluate.py --objectives results/heldout_rewordings.jsonl`` (or
``evaluation.eval_objectives_file``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

from environment.config import EnvironmentConfig
from environment.objectives import OBJECTIVE_KINDS, Objective, load_objectives

PER_KIND = 6
COUNT = 24
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "heldout_rewordings.jsonl"
_CABIN = {"economy": "economy", "business": "business", "first": "first class"}
_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}


def _nth(day: int) -> str:
    return f"{day}{'th' if 11 <= day <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th')}"


def _extras(o: Objective, budget: str, flex: str) -> str:
    parts = []
    if o.budget is not None:
        parts.append(budget.format(b=f"{o.budget:,.0f}"))
    if o.flexible_days:
        parts.append(flex.format(f=o.flexible_days))
    return "".join(parts)


def run_on(o: Objective) -> str:
    d = date.fromisoformat(o.date)
    who = "just me" if o.passengers == 1 else f"me plus {o.passengers - 1} so {o.passengers} ppl total"
    return (f"ok so i gotta get from {o.origin_city.lower()} to {o.destination_city.lower()} on the {_nth(d.day)} of "
            f"{d:%B}".lower() + f" its {who} and i want {_CABIN[o.cabin]} and put it under {o.passenger_name.lower()}"
            + _extras(o, " and dont go over {b} bucks", " and i can go a day or so either side ({f} max)"))


def abbreviated(o: Objective) -> str:
    d = date.fromisoformat(o.date)
    cabin = {"economy": "eco", "business": "biz", "first": "1st cl"}[o.cabin]
    return (f"need flt {o.origin}>{o.destination} {d.month}/{d.day} {cabin} x{o.passengers} pax, "
            f"nm {o.passenger_name}" + _extras(o, ", max ${b} tot", ", +/-{f}d flex"))


def reversed_fields(o: Objective) -> str:
    d = date.fromisoformat(o.date)
    people = "1 person" if o.passengers == 1 else f"{o.passengers} people"
    return (_extras(o, "Budget ${b}. ", "Flexible {f} day(s). ") + f"Name {o.passenger_name}. {people}. "
            f"{_CABIN[o.cabin].capitalize()}. {d:%b} {_nth(d.day)}. Destination {o.destination_city}, "
            f"origin {o.origin_city}.")


def someone_else(o: Objective) -> str:
    d = date.fromisoformat(o.date)
    first = o.passenger_name.split()[0]
    party = "on their own" if o.passengers == 1 else f"with the group, {_WORDS[o.passengers]} seats altogether"
    return (f"My colleague {o.passenger_name} has to be in {o.destination_city} on {d:%A} the {_nth(d.day)} of "
            f"{d:%B}, flying out of {o.origin_city} {party}; {first} prefers {_CABIN[o.cabin]}"
            + _extras(o, ", and finance caps it at ${b} for everything", ", though a {f}-day shift is fine") + ".")


def question(o: Objective) -> str:
    d = date.fromisoformat(o.date)
    seats = "a seat" if o.passengers == 1 else f"{o.passengers} seats"
    return (f"Could you find {seats} in {_CABIN[o.cabin]} from {o.origin_city} ({o.origin}) to "
            f"{o.destination_city} for {d.day} {d:%B}? It'd be for {o.passenger_name}"
            + _extras(o, ", ideally costing ${b} or less overall", ", give or take {f} day(s)") + ".")


def itinerary(o: Objective) -> str:
    d = date.fromisoformat(o.date)
    return (f"trip for {o.passenger_name} | dest: {o.destination} ({o.destination_city}) | orig: {o.origin} | "
            f"{d.isoformat()} | {o.cabin} | travellers: {o.passengers}"
            + _extras(o, " | cap ${b}", " | +/- {f} day(s)"))


STYLES: list[Callable[[Objective], str]] = [run_on, abbreviated, reversed_fields, someone_else, question, itinerary]


def heldout_rewordings(config: EnvironmentConfig | None = None) -> list[Objective]:
    """``COUNT`` held-out objectives (``PER_KIND`` of each kind where there are enough, then others in split order),
    each reworded by a style of :data:`STYLES` in turn."""
    _, held_out = load_objectives(config or EnvironmentConfig())
    chosen: list[Objective] = []
    for kind in OBJECTIVE_KINDS:
        chosen += [o for o in held_out if o.kind == kind][:PER_KIND]
    chosen += [o for o in held_out if o not in chosen][:COUNT - len(chosen)]
    return [replace(o, text=STYLES[index % len(STYLES)](o)) for index, o in enumerate(chosen[:COUNT])]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="the JSONL file to write")
    args = parser.parse_args(argv)
    objectives = heldout_rewordings()
    Path(args.out).write_text("".join(json.dumps(o.to_dict()) + "\n" for o in objectives))
    print(json.dumps({"out": args.out, "objectives": len(objectives)}))


if __name__ == "__main__":
    main()
