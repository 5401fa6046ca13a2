"""User objectives: what the simulated traveller wants, generated from the database as a ``datasets.Dataset``.

About ``infeasible_fraction`` of objectives cannot be met as stated (every flight's cabin sold out for the party,
or no route between the cities); the right behaviour there is to accept an alternative or end politely.
Objective kinds: "feasible", "multi_passenger", "budget", "infeasible".
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, fields
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datasets import Dataset

from database.catalog import RouteCatalog

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

    def with_text(self) -> Objective:
        day = date.fromisoformat(self.date)
        party = "yourself" if self.passengers == 1 else f"{self.passengers} passengers"
        text = (f"You want to fly from {self.origin_city} to {self.destination_city} on "
                f"{day.strftime('%B')} {day.day}, {day.year}, in {self.cabin}, for {party}. "
                f"The lead passenger is {self.passenger_name}.")
        if self.budget is not None:
            text += f" Keep the total under ${self.budget:,.0f}."
        if self.flexible_days:
            text += f" You can shift the date by up to {self.flexible_days} day(s)."
        return Objective(**{**asdict(self), "text": text})


def generate_objectives(db_path: str | Path, count: int, seed: int = 0, infeasible_fraction: float = 0.1) -> Dataset:
    """Sample ``count`` objectives from the database (read-only) as a Dataset of Objective records."""
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
                flexible_days=rng.choice([0, 0, 0, 1]), **record).with_text()
            records.append(objective.to_dict())
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


def load_objectives_jsonl(path: str | Path) -> list[Objective]:
    """User-supplied objectives, one JSON object per line (fields of :class:`Objective`; ``text`` optional)."""
    objectives = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            objectives.append(Objective.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{number}: invalid objective ({exc})") from None
    return objectives


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
