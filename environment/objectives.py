"""User objectives: what the simulated traveller wants, generated from the database as a ``datasets.Dataset``.

About ``infeasible_fraction`` of objectives cannot be met as stated (every flight's cabin sold out for the party,
or no route between the cities); the right behaviour there is to accept an alternative or end politely.
Objective kinds: "feasible", "multi_passenger", "budget", "infeasible".
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import MISSING, asdict, dataclass, fields
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datasets import Dataset

from database.catalog import RouteCatalog
from database.flight_db import (
    CABINS,
    MAX_PASSENGERS,
    BookingError,
    _one_line,
    validate_date,
    validate_passenger_name,
    validate_passengers,
)
from environment.objective_wordings import word_objective

if TYPE_CHECKING:
    from environment.config import EnvironmentConfig

FIRST_NAMES = ["Ann", "Bob", "Carlos", "Diana", "Emeka", "Fatima", "George", "Hana", "Ivan", "Julia", "Kenji", "Laura",
               "Mateo", "Nina", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Victor", "Wei", "Yara", "Zoe"]
LAST_NAMES = ["Lee", "Garcia", "Smith", "Okafor", "Khan", "Novak", "Tanaka", "Rossi", "Park", "Silva", "Brown",
              "Cohen", "Nguyen", "Patel", "Muller", "Jones", "Kim", "Lopez", "Walsh", "Singh"]


@dataclass(frozen=True)
class Objective:
    """What the traveller wants. ``text`` is the natural-language form the policy sees in its state."""

    objective_id: str
    origin: str
    destination: str
    origin_city: str
    destination_city: str
    date: str
    cabin: str
    passengers: int
    passenger_name: str
    kind: str = "feasible"
    feasible: bool = True
    budget: float | None = None
    flexible_days: int = 0
    text: str = ""

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Objective:
        names = {f.name for f in fields(cls)}
        unknown = set(record) - names
        if unknown:
            raise ValueError(f"unknown objective field(s): {', '.join(sorted(unknown))}")
        objective = cls(**record)
        return objective if objective.text else objective.with_text()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def detail_matches(self, key: str, value: object) -> bool:
        """Whether one stated detail ("date", "passenger_name", "origin", "cabin", ...) agrees with the objective.

        A date counts within ``flexible_days``; names compare case- and spacing-insensitively; other details
        must be equal. This is the one home of the rule, for the user's messages (rewards) and the booking
        (verifier) alike.
        """
        if key == "date":
            try:
                days = abs((date.fromisoformat(str(value)) - date.fromisoformat(self.date)).days)
            except ValueError:
                return False
            return days <= self.flexible_days
        if key == "passenger_name":
            return str(value).casefold().split() == self.passenger_name.casefold().split()
        return value == getattr(self, key)

    def booking_matches(self, booking: dict[str, Any]) -> bool:
        """Whether a booking (a ``FlightDatabase`` booking dict) meets the objective.

        For an infeasible objective, any booking on the same route for the same passenger counts: accepting an
        alternative is the right behaviour there.
        """
        same_trip = all(self.detail_matches(key, booking[key]) for key in ("origin", "destination", "passenger_name"))
        if not self.feasible:
            return same_trip
        within_budget = self.budget is None or booking["total_price"] <= self.budget + 1e-6
        return same_trip and within_budget and all(
            self.detail_matches(key, booking[key]) for key in ("date", "cabin", "passengers"))

    def summary(self) -> str:
        """The objective's fields in one fixed form, whatever its text's wording (the state's ``Goal:`` line with
        ``environment.objective_summary``), e.g. "Washington (DCA) to Chicago (ORD); Friday 4 December 2026, or up
        to 1 day earlier or later; business class; 2 passengers; lead passenger Julia Lopez; at most $450 in all"."""
        day = date.fromisoformat(self.date)
        when = f"{day.strftime('%A')} {day.day} {day.strftime('%B %Y')}"
        if self.flexible_days:
            when += f", or up to {self.flexible_days} day{'s' if self.flexible_days > 1 else ''} earlier or later"
        party = "1 passenger" if self.passengers == 1 else f"{self.passengers} passengers"
        parts = [f"{self.origin_city} ({self.origin}) to {self.destination_city} ({self.destination})", when,
                 f"{self.cabin} class", party, f"lead passenger {self.passenger_name}"]
        if self.budget is not None:
            parts.append(f"at most ${self.budget:,.0f} in all")
        return "; ".join(parts)

    def with_text(self, today: date | None = None) -> Objective:
        """This objective with its text worded from its fields (:func:`environment.objective_wordings.word_objective`,
        seeded by the objective id, so the same objective always gets the same words).

        ``today`` (the database's today) lets the wording add a relative hint beside the absolute date ("in 5
        days"); without it the text is the same draw less any such hint.
        """
        return Objective(**{**asdict(self), "text": word_objective(self, today).text})


def generate_objectives(db_path: str | Path, count: int, seed: int = 0, infeasible_fraction: float = 0.1) -> Dataset:
    """Sample ``count`` objectives from the database (read-only) as a Dataset of Objective records.

    Each text is worded in one of many ways (:mod:`environment.objective_wordings`: voice, field order, date and
    party forms), seeded per objective, so a policy cannot learn to copy one template."""
    rng = random.Random(seed)
    records = []
    with RouteCatalog(db_path) as catalog:
        route_set = set(catalog.routes)
        while len(records) < count:
            index = len(records)
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            day = (catalog.today + timedelta(days=rng.randint(1, 45))).isoformat()
            if rng.random() < infeasible_fraction:
                record = _infeasible(catalog, rng, route_set, day)
                if record is None:
                    continue
            else:
                origin, destination = rng.choice(catalog.routes)
                kind = rng.choice(["feasible", "feasible", "multi_passenger", "budget"])
                passengers = rng.randint(2, 4) if kind == "multi_passenger" else 1
                cabin = rng.choices(["economy", "business", "first"], weights=[6, 3, 1])[0]
                fares = catalog.fares(origin, destination, day, cabin, passengers)
                if not fares:
                    continue
                budget = round(fares[0] * passengers * rng.uniform(1.05, 1.3), -1) if kind == "budget" else None
                record = dict(origin=origin, destination=destination, date=day, cabin=cabin, passengers=passengers,
                              kind=kind, feasible=True, budget=budget)
            objective = Objective(
                objective_id=f"obj-{seed}-{index:05d}", origin_city=catalog.cities[record["origin"]],
                destination_city=catalog.cities[record["destination"]], passenger_name=name,
                flexible_days=rng.choice([0, 0, 0, 1]), **record)
            # Only the text varies, drawn from its own stream seeded by the objective id: the fields (and the
            # generator's stream, hence every later objective) are what they were with the single template.
            records.append(objective.with_text(catalog.today).to_dict())
    return Dataset.from_list(records)


def _infeasible(catalog: RouteCatalog, rng: random.Random, route_set: set[tuple[str, str]],
                day: str) -> dict[str, Any] | None:
    if rng.random() < 0.5:  # no route between two served cities
        codes = sorted(catalog.cities)
        for _ in range(50):
            origin, destination = rng.sample(codes, 2)
            if (origin, destination) not in route_set:
                return dict(origin=origin, destination=destination, date=day, cabin="economy", passengers=1,
                            kind="infeasible", feasible=False)
        return None
    # A route and day whose every flight has the cabin sold out.
    sold_out = catalog.sold_out_first_class_day(rng.randint(0, 40))
    if sold_out is None:
        return None
    origin, destination, sold_out_day = sold_out
    return dict(origin=origin, destination=destination, date=sold_out_day, cabin="first", passengers=1,
                kind="infeasible", feasible=False)


def split_objectives(dataset: Dataset, eval_fraction: float = 0.2, seed: int = 0) -> tuple[Dataset, Dataset]:
    """A seeded train/eval split."""
    parts = dataset.train_test_split(test_size=eval_fraction, seed=seed)
    return parts["train"], parts["test"]


OBJECTIVE_KINDS = ("feasible", "multi_passenger", "budget", "infeasible")
MAX_OBJECTIVE_TEXT_CHARS = 4000  # generated texts are under 250; a longer one would swamp the policy's state
MAX_FIELD_CHARS = 100  # objective ids and city names
MAX_FLEXIBLE_DAYS = 30
_IATA_CODE = re.compile(r"^[A-Z]{3}$")


class ObjectivesFileError(ValueError):
    """A user-supplied objectives file that cannot be used; one line, ``path:line: field: problem (got value)``."""


def load_objectives_jsonl(path: str | Path) -> list[Objective]:
    """User-supplied objectives, one JSON object per line (fields of :class:`Objective`; ``text`` optional).

    Every field is checked (type, range, known cabin and kind, ISO date, ...) as the file is read, and a UTF-8
    byte-order mark is accepted; blank lines are skipped.

    Raises:
        ObjectivesFileError: one line naming the file, the line and the field: a missing file, a directory, a file
            that is not UTF-8 text, a line that is not a JSON object, a bad field, or a file with no objectives.
    """
    path = Path(path)
    if not path.exists():
        raise ObjectivesFileError(f"{path}: no such file")
    if path.is_dir():
        raise ObjectivesFileError(f"{path}: is a directory, not a JSONL file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ObjectivesFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if b"\0" in raw:
        line = raw[:raw.index(b"\0")].count(b"\n") + 1
        raise ObjectivesFileError(f"{path}:{line}: not a text file (holds a NUL byte)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ObjectivesFileError(f"{path}:{line}: not UTF-8 text (byte {raw[exc.start]:#04x})") from None
    objectives = []
    # Split on newlines only: str.splitlines would also split inside a JSON string holding U+2028 and the like.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ObjectivesFileError(f"{path}:{number}: not valid JSON ({exc.msg}, column {exc.colno})") from None
        except RecursionError:
            raise ObjectivesFileError(f"{path}:{number}: not valid JSON (nested too deeply)") from None
        if not isinstance(record, dict):
            raise ObjectivesFileError(f"{path}:{number}: expected a JSON object of objective fields, got "
                                      f"{type(record).__name__} {_one_line(record)}")
        try:
            objectives.append(Objective.from_dict(check_objective_record(record)))
        except ValueError as exc:
            raise ObjectivesFileError(f"{path}:{number}: {exc}") from None
    if not objectives:
        raise ObjectivesFileError(f"{path}: holds no objectives (one JSON object per line)")
    return objectives


def check_objective_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with ``objective_id`` as a string, after checking every field of :class:`Objective`.

    Raises:
        ValueError: ``field: problem (got value)``.
    """
    known = {f.name: f for f in fields(Objective)}
    for name in record:
        if name not in known:
            raise ValueError(f"{_one_line(name)}: unknown objective field (known: {', '.join(known)})")
    for name, field in known.items():
        if name not in record and field.default is MISSING:
            raise ValueError(f"{name}: missing (a required objective field)")
    checked = dict(record)
    for name, value in record.items():
        problem = _field_problem(name, value)
        if problem:
            raise ValueError(f"{name}: {problem} (got {_one_line(value)})")
    checked["objective_id"] = str(record["objective_id"])
    return checked


def _field_problem(name: str, value: Any) -> str | None:
    """What is wrong with one objective field's value, or None."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if name == "objective_id":
        if not (isinstance(value, str) or is_int(value)) or not str(value).strip():
            return "expected a non-empty string or an integer"
        return None if len(str(value)) <= MAX_FIELD_CHARS else f"longer than {MAX_FIELD_CHARS} characters"
    if name in ("origin", "destination"):
        return None if isinstance(value, str) and _IATA_CODE.match(value) else "expected a 3-letter IATA code"
    if name in ("origin_city", "destination_city"):
        if not isinstance(value, str) or not value.strip():
            return "expected a non-empty string"
        return None if len(value) <= MAX_FIELD_CHARS else f"longer than {MAX_FIELD_CHARS} characters"
    if name == "date":
        try:
            return None if isinstance(value, str) and validate_date(value) == value else "expected a date, YYYY-MM-DD"
        except BookingError as exc:
            return "expected a real calendar date" if "calendar" in str(exc) else "expected a date, YYYY-MM-DD"
    if name == "cabin":
        return None if value in CABINS else f"expected one of {', '.join(CABINS)}"
    if name == "passengers":
        try:
            validate_passengers(value)
        except BookingError:
            return f"expected an integer from 1 to {MAX_PASSENGERS}"
        return None
    if name == "passenger_name":
        if not isinstance(value, str):
            return "expected a string"
        try:
            validate_passenger_name(value)
        except BookingError as exc:  # the booking tool would refuse it too
            return str(exc)
        return None
    if name == "kind":
        return None if value in OBJECTIVE_KINDS else f"expected one of {', '.join(OBJECTIVE_KINDS)}"
    if name == "feasible":
        return None if isinstance(value, bool) else "expected true or false"
    if name == "budget":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            return "expected a positive number or null"
        return None
    if name == "flexible_days":
        return None if is_int(value) and 0 <= value <= MAX_FLEXIBLE_DAYS else \
            f"expected an integer from 0 to {MAX_FLEXIBLE_DAYS}"
    if name == "text":
        if not isinstance(value, str):
            return "expected a string"
        return None if len(value) <= MAX_OBJECTIVE_TEXT_CHARS else \
            f"longer than {MAX_OBJECTIVE_TEXT_CHARS} characters ({len(value)})"
    return None


def load_objectives(config: EnvironmentConfig, eval_objectives_file: str | None = None) -> tuple[list[Objective],
                                                                                            list[Objective]]:
    """(training, held-out) objectives: a seeded split of objectives generated from the configured database
    (``config.objectives_seed``); ``config.objectives_file`` replaces the training side, ``eval_objectives_file``
    the held-out side."""
    from database.build import ensure_database

    dataset = generate_objectives(ensure_database(config.db_path, config.db_seed), config.num_objectives,
                                  config.objectives_seed, config.infeasible_fraction)
    train, held_out = split_objectives(dataset, config.eval_fraction, config.objectives_seed)
    train_objectives = [Objective.from_dict(r) for r in train]
    eval_objectives = [Objective.from_dict(r) for r in held_out]
    if config.objectives_file:
        train_objectives = load_objectives_jsonl(config.objectives_file)
    if eval_objectives_file:
        eval_objectives = load_objectives_jsonl(eval_objectives_file)
    return train_objectives, eval_objectives
