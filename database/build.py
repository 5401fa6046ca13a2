"""Deterministic generator of the flight database.

    python -m database.build --out database/flights.db --seed 0

The same seed always gives the same content (see :func:`content_hash`). Prices follow route length
(a base fare plus a per-mile rate, with per-flight noise) and cabin multipliers; a few cabins are sold out
so that some user objectives are infeasible.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import sqlite3
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

SCHEMA_PATH = Path(__file__).with_name("schema.sql")
DEFAULT_DB_PATH = Path(__file__).with_name("flights.db")
# The database's fixed "today": relative dates ("tomorrow") resolve against it, so episodes are reproducible.
TODAY = date(2026, 12, 1)
SCHEDULE_DAYS = 60

# (code, city, state, airport name, latitude, longitude)
AIRPORTS: list[tuple[str, str, str, str, float, float]] = [
    ("ATL", "Atlanta", "GA", "Hartsfield-Jackson Atlanta International", 33.64, -84.43),
    ("LAX", "Los Angeles", "CA", "Los Angeles International", 33.94, -118.41),
    ("ORD", "Chicago", "IL", "O'Hare International", 41.97, -87.91),
    ("DFW", "Dallas", "TX", "Dallas/Fort Worth International", 32.90, -97.04),
    ("DEN", "Denver", "CO", "Denver International", 39.86, -104.67),
    ("JFK", "New York", "NY", "John F. Kennedy International", 40.64, -73.78),
    ("SFO", "San Francisco", "CA", "San Francisco International", 37.62, -122.38),
    ("SEA", "Seattle", "WA", "Seattle-Tacoma International", 47.45, -122.31),
    ("LAS", "Las Vegas", "NV", "Harry Reid International", 36.08, -115.15),
    ("MCO", "Orlando", "FL", "Orlando International", 28.43, -81.31),
    ("MIA", "Miami", "FL", "Miami International", 25.80, -80.29),
    ("CLT", "Charlotte", "NC", "Charlotte Douglas International", 35.21, -80.94),
    ("PHX", "Phoenix", "AZ", "Phoenix Sky Harbor International", 33.43, -112.01),
    ("IAH", "Houston", "TX", "George Bush Intercontinental", 29.98, -95.34),
    ("BOS", "Boston", "MA", "Logan International", 42.36, -71.01),
    ("MSP", "Minneapolis", "MN", "Minneapolis-Saint Paul International", 44.88, -93.22),
    ("DTW", "Detroit", "MI", "Detroit Metropolitan Wayne County", 42.21, -83.35),
    ("PHL", "Philadelphia", "PA", "Philadelphia International", 39.87, -75.24),
    ("SLC", "Salt Lake City", "UT", "Salt Lake City International", 40.79, -111.98),
    ("DCA", "Washington", "DC", "Ronald Reagan Washington National", 38.85, -77.04),
    ("SAN", "San Diego", "CA", "San Diego International", 32.73, -117.19),
    ("TPA", "Tampa", "FL", "Tampa International", 27.98, -82.53),
    ("BNA", "Nashville", "TN", "Nashville International", 36.12, -86.68),
    ("AUS", "Austin", "TX", "Austin-Bergstrom International", 30.19, -97.67),
    ("PDX", "Portland", "OR", "Portland International", 45.59, -122.60),
    ("STL", "St. Louis", "MO", "St. Louis Lambert International", 38.75, -90.37),
    ("MSY", "New Orleans", "LA", "Louis Armstrong New Orleans International", 29.99, -90.26),
    ("HNL", "Honolulu", "HI", "Daniel K. Inouye International", 21.32, -157.92),
]
HUBS = ["ATL", "ORD", "DFW", "DEN", "JFK", "LAX", "SFO", "SEA"]
AIRLINES = ["AA", "UA", "DL", "WN", "B6", "AS"]
CABIN_MULTIPLIER = {"economy": 1.0, "business": 2.8, "first": 4.6}
CABIN_CAPACITY = {"economy": 150, "business": 28, "first": 12}


def great_circle_miles(a: tuple, b: tuple) -> float:
    """Haversine distance between two airport rows, in statute miles."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[4], a[5], b[4], b[5]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 3958.8 * 2 * math.asin(math.sqrt(h))


def _routes(rng: random.Random) -> list[tuple[str, str]]:
    """Directed routes: every hub pair, every spoke to its three nearest hubs, a few spoke-to-spoke links."""
    by_code = {row[0]: row for row in AIRPORTS}
    pairs: set[tuple[str, str]] = set()
    for i, a in enumerate(HUBS):
        for b in HUBS[i + 1 :]:
            pairs.add((a, b))
    spokes = [row[0] for row in AIRPORTS if row[0] not in HUBS]
    for spoke in spokes:
        nearest = sorted(HUBS, key=lambda hub: great_circle_miles(by_code[spoke], by_code[hub]))[:3]
        pairs.update((spoke, hub) for hub in nearest)
    for _ in range(12):
        a, b = rng.sample(spokes, 2)
        pairs.add((a, b))
    directed = sorted({(a, b) for a, b in pairs} | {(b, a) for a, b in pairs})
    return directed


def generate(conn: sqlite3.Connection, seed: int = 0) -> None:
    """Fill an empty database (schema already applied) deterministically from ``seed``."""
    rng = random.Random(seed)
    by_code = {row[0]: row for row in AIRPORTS}
    conn.execute("INSERT INTO metadata (key, value) VALUES ('today', ?)", (TODAY.isoformat(),))
    conn.execute("INSERT INTO metadata (key, value) VALUES ('seed', ?)", (str(seed),))
    conn.execute("INSERT INTO metadata (key, value) VALUES ('code_salt', ?)", (str(seed),))
    conn.executemany(
        "INSERT INTO airports (code, city, state, name) VALUES (?, ?, ?, ?)", [row[:4] for row in AIRPORTS]
    )
    used_numbers: set[str] = set()
    flights = []
    for origin, destination in _routes(rng):
        miles = great_circle_miles(by_code[origin], by_code[destination])
        block_minutes = int(35 + miles / 500 * 60)  # taxi + climb, then ~500 mph cruise
        base_fare = 49 + 0.11 * miles
        departures_per_day = 2 if origin in HUBS and destination in HUBS else 1
        for _ in range(departures_per_day):
            airline = rng.choice(AIRLINES)
            number = f"{airline}{rng.randint(100, 2999)}"
            while number in used_numbers:
                number = f"{airline}{rng.randint(100, 2999)}"
            used_numbers.add(number)
            dep_minutes = rng.randrange(6 * 60, 21 * 60, 5)
            for day in range(SCHEDULE_DAYS):
                day_date = TODAY + timedelta(days=day)
                departure = datetime.combine(day_date, datetime.min.time()) + timedelta(minutes=dep_minutes)
                arrival = departure + timedelta(minutes=block_minutes)
                weekend = 1.15 if day_date.weekday() in (4, 6) else 1.0
                economy = round(base_fare * weekend * rng.uniform(0.85, 1.3), 2)
                prices = {cabin: round(economy * mult * rng.uniform(0.95, 1.05), 2) for cabin, mult in
                          CABIN_MULTIPLIER.items()}
                prices["economy"] = economy
                seats = {}
                for cabin, capacity in CABIN_CAPACITY.items():
                    sold_out_chance = {"economy": 0.04, "business": 0.08, "first": 0.12}[cabin]
                    seats[cabin] = 0 if rng.random() < sold_out_chance else rng.randint(1, capacity)
                status = "cancelled" if rng.random() < 0.01 else "scheduled"
                flights.append((
                    number, origin, destination, day_date.isoformat(), departure.strftime("%Y-%m-%d %H:%M"),
                    arrival.strftime("%Y-%m-%d %H:%M"), status, prices["economy"], prices["business"],
                    prices["first"], seats["economy"], seats["business"], seats["first"],
                ))
    flights.sort(key=lambda f: (f[3], f[4], f[0]))
    conn.executemany(
        "INSERT INTO flights (flight_number, origin, destination, departure_date, departure_time, arrival_time,"
        " status, price_economy, price_business, price_first, seats_economy, seats_business, seats_first)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        flights,
    )


def build_database(out: str | os.PathLike, seed: int = 0) -> Path:
    """Write a fresh database file at ``out`` (atomically: built beside it, then renamed into place)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp_name)
        with conn:
            conn.executescript(SCHEMA_PATH.read_text())
            generate(conn, seed)
        conn.close()
        os.replace(tmp_name, out)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return out


def ensure_database(path: str | os.PathLike | None = None, seed: int = 0) -> Path:
    """Return ``path`` (default ``database/flights.db``), building it first when it does not exist."""
    path = Path(path) if path is not None else DEFAULT_DB_PATH
    if not path.exists():
        build_database(path, seed)
    return path


def content_hash(path: str | os.PathLike) -> str:
    """SHA-256 of the database's logical content (its SQL dump), independent of page layout."""
    conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
    try:
        digest = hashlib.sha256()
        for line in conn.iterdump():
            digest.update(line.encode())
        return digest.hexdigest()
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_DB_PATH), help="output SQLite file")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    args = parser.parse_args(argv)
    path = build_database(args.out, args.seed)
    conn = sqlite3.connect(path)
    (n_flights,) = conn.execute("SELECT count(*) FROM flights").fetchone()
    (n_airports,) = conn.execute("SELECT count(*) FROM airports").fetchone()
    conn.close()
    print(f"wrote {path}: {n_airports} airports, {n_flights} flights, content hash {content_hash(path)[:16]}")


if __name__ == "__main__":
    main()
