"""Read-only queries over the flight table that objective generation needs (SQL lives in ``database/`` only)."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

CABIN_COLUMNS = {"economy": ("price_economy", "seats_economy"), "business": ("price_business", "seats_business"),
                 "first": ("price_first", "seats_first")}


class RouteCatalog:
    """Airports, routes, the database's today, and fares, read from a flight database opened ``mode=ro``.

    Args:
        db_path: a flight database file (``database/build.py``).
    """

    def __init__(self, db_path: str | Path):
        self._conn = sqlite3.connect(f"file:{Path(db_path).resolve()}?mode=ro", uri=True)
        self._conn.row_factory = sqlite3.Row
        self.cities: dict[str, str] = {row["code"]: row["city"]
                                       for row in self._conn.execute("SELECT code, city FROM airports")}
        routes = self._conn.execute("SELECT DISTINCT origin, destination FROM flights ORDER BY 1, 2")
        self.routes: list[tuple[str, str]] = [(row[0], row[1]) for row in routes]
        today = self._conn.execute("SELECT value FROM metadata WHERE key = 'today'").fetchone()
        if today is None:
            raise ValueError(f"{db_path}: the database has no 'today' in its metadata")
        self.today: date = date.fromisoformat(today[0])

    def fares(self, origin: str, destination: str, day: str, cabin: str, passengers: int) -> list[float]:
        """Per-person fares, cheapest first, of the flights on that route and day with ``passengers`` seats free."""
        price, seats = CABIN_COLUMNS[cabin]
        rows = self._conn.execute(
            f"SELECT {price} FROM flights WHERE origin = ? AND destination = ? AND departure_date = ?"
            f" AND status != 'cancelled' AND {seats} >= ? ORDER BY {price}",
            (origin, destination, day, passengers)).fetchall()
        return [row[0] for row in rows]

    def sold_out_first_class_day(self, index: int) -> tuple[str, str, str] | None:
        """The ``index``-th (origin, destination, day) on which every flight's first class is sold out, if any."""
        row = self._conn.execute(
            "SELECT origin, destination, departure_date FROM flights GROUP BY origin, destination, departure_date"
            " HAVING max(seats_first) = 0 ORDER BY origin, destination, departure_date LIMIT 1 OFFSET ?",
            (index,)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> RouteCatalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
