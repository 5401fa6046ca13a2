"""Typed data access to the flight database. Every query is parameterized; SQL lives only in this package.

Errors that a caller (or a user, through the booking agent) can cause raise :class:`BookingError` with a
one-line message that is safe to show, never an SQLite traceback.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import string
import threading
from datetime import date, datetime
from pathlib import Path
from typing import Any

CABINS = ("economy", "business", "first")
MAX_PASSENGERS = 9
MAX_NAME_LENGTH = 64
REQUIRED_TABLES = ("airports", "flights", "passengers", "bookings", "metadata")
# Passenger names: letters (any script), spaces, apostrophes, hyphens and periods, e.g. "Mary-Jane O'Neil Jr.".
_NAME_PATTERN = re.compile(r"^[^\W\d_]+(?:[ '\-.]+[^\W\d_]+)*\.?$")
_DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CODE_ALPHABET = string.ascii_uppercase + string.digits


class BookingError(ValueError):
    """A request the database cannot satisfy (bad argument, unknown airport, sold out, ...). One line."""


def _one_line(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate_cabin(cabin: str) -> str:
    normalized = str(cabin).strip().lower()
    if normalized not in CABINS:
        raise BookingError(f"unknown cabin {_one_line(cabin)}; expected one of {', '.join(CABINS)}")
    return normalized


def validate_date(value: str) -> str:
    text = str(value).strip()
    if not _DATE_PATTERN.match(text):
        raise BookingError(f"malformed date {_one_line(value)}; expected YYYY-MM-DD")
    try:
        date.fromisoformat(text)
    except ValueError:
        raise BookingError(f"invalid calendar date {_one_line(value)}") from None
    return text


def validate_passengers(passengers: int) -> int:
    if isinstance(passengers, bool) or not isinstance(passengers, int):
        raise BookingError(f"passengers must be an integer, got {_one_line(passengers)}")
    if not 1 <= passengers <= MAX_PASSENGERS:
        raise BookingError(f"passengers must be between 1 and {MAX_PASSENGERS}, got {passengers}")
    return passengers


def validate_passenger_name(name: str) -> str:
    text = " ".join(str(name).split()) if not any(ord(ch) < 32 or ord(ch) == 127 for ch in str(name)) else None
    if text is None:
        raise BookingError("passenger name contains control characters")
    if not text:
        raise BookingError("passenger name is empty")
    if len(text) > MAX_NAME_LENGTH:
        raise BookingError(f"passenger name is too long ({len(text)} characters, at most {MAX_NAME_LENGTH})")
    if not _NAME_PATTERN.match(text):
        raise BookingError(f"passenger name {_one_line(text)} may hold only letters, spaces, ' - and .")
    return text


def validate_confirmation_code(code: str) -> str:
    text = str(code).strip().upper()
    if len(text) != 6 or any(ch not in _CODE_ALPHABET for ch in text):
        raise BookingError(f"malformed confirmation code {_one_line(code)}; expected 6 letters or digits")
    return text


class FlightDatabase:
    """Data-access object over one SQLite file.

    Args:
        path: the database file.
        read_only: open with SQLite ``mode=ro``; write methods then fail. The verifier uses this mode.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: ``path`` is a directory, not an SQLite file, or lacks the flight tables (one line).
    """

    def __init__(self, path: str | os.PathLike, read_only: bool = False):
        self.path = Path(path)
        self.read_only = read_only
        if not self.path.exists():
            raise FileNotFoundError(f"flight database not found: {self.path}")
        if not self.path.is_file():
            raise ValueError(f"{self.path} is not a flight database (not a file)")
        uri = f"file:{self.path.resolve()}?mode={'ro' if read_only else 'rw'}"
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) where several statements must be atomic.
        self._conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30.0)
        self._conn.row_factory = sqlite3.Row
        # Fail here, once and clearly, rather than with "internal error" on every later call.
        try:
            self._conn.execute("PRAGMA foreign_keys = ON")
            tables = {row[0] for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ValueError(f"{self.path} is not a flight database ({exc})") from None
        if missing := sorted(set(REQUIRED_TABLES) - tables):
            self._conn.close()
            raise ValueError(f"{self.path} is not a flight database (no table {', '.join(missing)})")
        # The MCP server runs tools on worker threads that share this connection. Every statement, reads included,
        # runs under this lock and is read to the end, so no read lock is held while a booking starts: a connection
        # that holds a read lock gets SQLITE_BUSY at once on BEGIN IMMEDIATE (the busy timeout does not apply), and
        # a booking would be refused with seats free. Reentrant: a booking reads inside its own transaction.
        self._lock = threading.RLock()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> FlightDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads -------------------------------------------------------------------------------------------------
    def _fetch_all(self, sql: str, parameters: tuple = ()) -> list[sqlite3.Row]:
        """Run one query to completion under the connection lock (no statement is left holding a read lock)."""
        with self._lock:
            return self._conn.execute(sql, parameters).fetchall()

    def _fetch_one(self, sql: str, parameters: tuple = ()) -> sqlite3.Row | None:
        rows = self._fetch_all(sql, parameters)
        return rows[0] if rows else None

    def metadata(self, key: str) -> str | None:
        row = self._fetch_one("SELECT value FROM metadata WHERE key = ?", (key,))
        return row["value"] if row else None

    def today(self) -> date:
        """The database's fixed "today" (relative dates resolve against it)."""
        today = self.metadata("today")
        if not today:
            raise BookingError(f"{self.path}: no 'today' in the database metadata (build it with database.build)")
        return date.fromisoformat(today)

    def list_airports(self) -> list[dict[str, str]]:
        rows = self._fetch_all("SELECT code, city, state, name FROM airports ORDER BY code")
        return [dict(row) for row in rows]

    def resolve_airport(self, value: str) -> str:
        """IATA code for a code, a city or an airport name (case-insensitive)."""
        text = " ".join(str(value).split())
        if not text or len(text) > 64:
            raise BookingError(f"unknown airport {_one_line(value)}")
        row = self._fetch_one(
            "SELECT code FROM airports WHERE code = upper(?) OR lower(city) = lower(?) OR lower(name) = lower(?)",
            (text, text, text),
        )
        if row is None:
            raise BookingError(f"unknown airport {_one_line(value)}; use an IATA code or a city we serve")
        return row["code"]

    def search_flights(
        self, origin: str, destination: str, date: str, cabin: str = "economy", passengers: int = 1
    ) -> list[dict[str, Any]]:
        """Scheduled flights on a route and day with at least ``passengers`` seats left in ``cabin``."""
        origin_code, destination_code = self.resolve_airport(origin), self.resolve_airport(destination)
        day, cabin, passengers = validate_date(date), validate_cabin(cabin), validate_passengers(passengers)
        if origin_code == destination_code:
            raise BookingError("origin and destination are the same airport")
        rows = self._fetch_all(
            f"SELECT flight_number, origin, destination, departure_date, departure_time, arrival_time,"
            f" price_{cabin} AS price, seats_{cabin} AS seats_left FROM flights"
            f" WHERE origin = ? AND destination = ? AND departure_date = ? AND status != 'cancelled'"
            f" AND seats_{cabin} >= ? ORDER BY departure_time",
            (origin_code, destination_code, day, passengers),
        )  # the f-string only inserts a validated cabin name; values are parameters
        return [
            {
                "flight_number": row["flight_number"], "origin": row["origin"], "destination": row["destination"],
                "date": row["departure_date"], "departure_time": row["departure_time"][11:],
                "arrival_time": row["arrival_time"][11:], "cabin": cabin, "price_per_passenger": row["price"],
                "total_price": round(row["price"] * passengers, 2), "seats_left": row["seats_left"],
            }
            for row in rows
        ]

    def _flight_row(self, flight_number: str, day: str) -> sqlite3.Row:
        number = str(flight_number).strip().upper()
        if not re.fullmatch(r"[A-Z0-9]{2}\d{1,4}", number):
            raise BookingError(f"malformed flight number {_one_line(flight_number)}")
        row = self._fetch_one("SELECT * FROM flights WHERE flight_number = ? AND departure_date = ?", (number, day))
        if row is None:
            raise BookingError(f"no flight {number} on {day}")
        return row

    def get_flight(self, flight_number: str, date: str) -> dict[str, Any]:
        """All details of one flight on one day, every cabin's price and seats left."""
        row = self._flight_row(flight_number, validate_date(date))
        return {
            "flight_number": row["flight_number"], "origin": row["origin"], "destination": row["destination"],
            "date": row["departure_date"], "departure_time": row["departure_time"][11:],
            "arrival_time": row["arrival_time"][11:], "status": row["status"],
            "cabins": {
                cabin: {"price_per_passenger": row[f"price_{cabin}"], "seats_left": row[f"seats_{cabin}"]}
                for cabin in CABINS
            },
        }

    def flight_numbers(self) -> set[str]:
        """Every flight number in the schedule, on any day (the verifier's test for a flight that does not exist)."""
        return {row[0] for row in self._conn.execute("SELECT DISTINCT flight_number FROM flights")}

    def get_booking(self, confirmation_code: str) -> dict[str, Any]:
        code = validate_confirmation_code(confirmation_code)
        row = self._fetch_one(
            "SELECT b.confirmation_code, b.cabin, b.passenger_name, b.num_passengers, b.total_price, b.status,"
            " b.created_at, f.flight_number, f.origin, f.destination, f.departure_date, f.departure_time"
            " FROM bookings b JOIN flights f ON f.flight_id = b.flight_id WHERE b.confirmation_code = ?",
            (code,),
        )
        if row is None:
            raise BookingError(f"no booking with confirmation code {code}")
        return _booking_dict(row)

    def list_bookings(self) -> list[dict[str, Any]]:
        """Every booking (verification and tests; not exposed as a tool)."""
        rows = self._fetch_all(
            "SELECT b.confirmation_code, b.cabin, b.passenger_name, b.num_passengers, b.total_price, b.status,"
            " b.created_at, f.flight_number, f.origin, f.destination, f.departure_date, f.departure_time"
            " FROM bookings b JOIN flights f ON f.flight_id = b.flight_id ORDER BY b.created_at, b.rowid"
        )
        return [_booking_dict(row) for row in rows]

    # -- writes ------------------------------------------------------------------------------------------------
    def book_flight(
        self, flight_number: str, date: str, cabin: str, passenger_name: str, passengers: int = 1
    ) -> dict[str, Any]:
        """Book seats in one transaction: the seat decrement and the booking insert commit together or not at all.

        The decrement is conditional (``seats >= passengers``) inside ``BEGIN IMMEDIATE``, so the last seat cannot
        be sold twice, also by two processes sharing the file.
        """
        day, cabin = validate_date(date), validate_cabin(cabin)
        name, passengers = validate_passenger_name(passenger_name), validate_passengers(passengers)
        with self._lock:
            self._begin_write()
            try:
                flight = self._flight_row(flight_number, day)
                if flight["status"] == "cancelled":
                    raise BookingError(f"flight {flight['flight_number']} on {day} is cancelled")
                updated = self._conn.execute(
                    f"UPDATE flights SET seats_{cabin} = seats_{cabin} - ? WHERE flight_id = ? AND seats_{cabin} >= ?",
                    (passengers, flight["flight_id"], passengers),
                ).rowcount
                if updated != 1:
                    raise BookingError(
                        f"{cabin} on {flight['flight_number']} {day} has fewer than {passengers} seats left"
                    )
                self._conn.execute("INSERT OR IGNORE INTO passengers (full_name) VALUES (?)", (name,))
                (passenger_id,) = self._fetch_one("SELECT passenger_id FROM passengers WHERE full_name = ?", (name,))
                code = self._new_confirmation_code(flight["flight_id"], name)
                total = round(flight[f"price_{cabin}"] * passengers, 2)
                self._conn.execute(
                    "INSERT INTO bookings (confirmation_code, flight_id, passenger_id, cabin, passenger_name,"
                    " num_passengers, total_price, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'booked', ?)",
                    (code, flight["flight_id"], passenger_id, cabin, name, passengers, total,
                     datetime.now().isoformat(timespec="seconds")),
                )
                self._commit()
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return self.get_booking(code)

    def cancel_booking(self, confirmation_code: str) -> dict[str, Any]:
        """Cancel a booking and return its seats to the flight, atomically."""
        code = validate_confirmation_code(confirmation_code)
        with self._lock:
            self._begin_write()
            try:
                row = self._fetch_one(
                    "SELECT flight_id, cabin, num_passengers, status FROM bookings WHERE confirmation_code = ?",
                    (code,),
                )
                if row is None:
                    raise BookingError(f"no booking with confirmation code {code}")
                if row["status"] == "cancelled":
                    raise BookingError(f"booking {code} is already cancelled")
                self._conn.execute("UPDATE bookings SET status = 'cancelled' WHERE confirmation_code = ?", (code,))
                self._conn.execute(
                    f"UPDATE flights SET seats_{validate_cabin(row['cabin'])} = seats_{row['cabin']} + ?"
                    " WHERE flight_id = ?",
                    (row["num_passengers"], row["flight_id"]),
                )
                self._commit()
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return self.get_booking(code)

    def _begin_write(self) -> None:
        if self.read_only:
            raise BookingError("the database is opened read-only; bookings cannot be changed")
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise BookingError(f"database is busy ({exc})") from None

    def _commit(self) -> None:
        try:
            self._conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:  # still locked by readers after the busy timeout
            raise BookingError(f"database is busy ({exc})") from None

    def _new_confirmation_code(self, flight_id: int, name: str) -> str:
        """A random 6-character code, seeded by the database's ``code_salt`` and how many bookings exist.

        Seeding from database content (not process state) makes episodes reproducible and identical across
        transports, while codes still look random, so a hallucinated code cannot match a real one by luck.
        """
        (count,) = self._fetch_one("SELECT count(*) FROM bookings")
        rng = random.Random(f"{self.metadata('code_salt')}:{count}:{flight_id}:{name}")
        while True:
            code = "".join(rng.choice(_CODE_ALPHABET) for _ in range(6))
            if not self._fetch_one("SELECT 1 FROM bookings WHERE confirmation_code = ?", (code,)):
                return code

    def set_code_salt(self, salt: str) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO metadata (key, value) VALUES ('code_salt', ?)", (str(salt),))


def _booking_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "confirmation_code": row["confirmation_code"], "flight_number": row["flight_number"],
        "origin": row["origin"], "destination": row["destination"], "date": row["departure_date"],
        "departure_time": row["departure_time"][11:], "cabin": row["cabin"],
        "passenger_name": row["passenger_name"], "passengers": row["num_passengers"],
        "total_price": row["total_price"], "status": row["status"],
    }
