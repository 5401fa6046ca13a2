"""The flight database: determinism, sizes, constraints, data access, atomic booking, isolation."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from database import BookingError, EpisodeDatabase, FlightDatabase
from database.build import SCHEDULE_DAYS, TODAY, build_database, content_hash


def test_generator_is_deterministic_per_seed(tmp_path: Path, template_db: Path) -> None:
    again = build_database(tmp_path / "again.db", seed=0)
    other = build_database(tmp_path / "other.db", seed=1)
    assert content_hash(again) == content_hash(template_db)
    assert content_hash(other) != content_hash(template_db)


def test_generator_sizes(template_db: Path) -> None:
    conn = sqlite3.connect(template_db)
    (airports,) = conn.execute("SELECT count(*) FROM airports").fetchone()
    (flights,) = conn.execute("SELECT count(*) FROM flights").fetchone()
    first, last = conn.execute("SELECT min(departure_date), max(departure_date) FROM flights").fetchone()
    (sold_out,) = conn.execute("SELECT count(*) FROM flights WHERE seats_economy = 0 OR seats_first = 0").fetchone()
    (bad_order,) = conn.execute(
        "SELECT count(*) FROM flights WHERE NOT (price_economy < price_business AND price_business < price_first)"
    ).fetchone()
    assert airports >= 25 and flights >= 2000
    assert first == TODAY.isoformat() and SCHEDULE_DAYS >= 60
    assert last >= "2027-01-29"  # at least 60 days from the first
    assert sold_out > 0
    assert bad_order == 0  # first class always costs more than business, business more than economy


def test_schema_constraints_reject_bad_rows(db_copy: Path) -> None:
    conn = sqlite3.connect(db_copy)
    conn.execute("PRAGMA foreign_keys = ON")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE flights SET seats_economy = -1 WHERE flight_id = 1")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE flights SET price_first = 0 WHERE flight_id = 1")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO bookings VALUES ('ABCDEF', 1, 1, 'premium', 'A B', 1, 10.0, 'booked', '2026-12-01')"
        )
    with pytest.raises(sqlite3.IntegrityError):  # foreign key: no flight 999999
        conn.execute("INSERT INTO passengers (full_name) VALUES ('A B')")
        conn.execute("INSERT INTO bookings VALUES ('ABCDEF', 999999, 1, 'economy', 'A B', 1, 10.0, 'booked', 'x')")


def test_search_accepts_codes_and_cities(template_db: Path) -> None:
    with FlightDatabase(template_db, read_only=True) as db:
        by_code = db.search_flights("BOS", "ATL", "2026-12-03")
        by_city = db.search_flights("boston", "Atlanta", "2026-12-03")
        assert by_code == by_city and len(by_code) >= 1
        flight = by_code[0]
        assert flight["origin"] == "BOS" and flight["destination"] == "ATL" and flight["date"] == "2026-12-03"
        two = db.search_flights("BOS", "ATL", "2026-12-03", passengers=2)
        assert all(f["total_price"] == pytest.approx(2 * f["price_per_passenger"]) for f in two)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(origin="Atlantis", destination="ATL", date="2026-12-03"), "unknown airport"),
        (dict(origin="BOS", destination="ATL", date="03/12/2026"), "malformed date"),
        (dict(origin="BOS", destination="ATL", date="2026-02-30"), "invalid calendar date"),
        (dict(origin="BOS", destination="ATL", date="2026-12-03", passengers=0), "between 1 and 9"),
        (dict(origin="BOS", destination="ATL", date="2026-12-03", cabin="premium"), "unknown cabin"),
        (dict(origin="BOS", destination="BOS", date="2026-12-03"), "same airport"),
    ],
)
def test_search_rejects_bad_input_with_one_line(template_db: Path, kwargs: dict, message: str) -> None:
    with FlightDatabase(template_db, read_only=True) as db, pytest.raises(BookingError) as info:
        db.search_flights(**kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_book_get_cancel_round_trip(db_copy: Path) -> None:
    with FlightDatabase(db_copy) as db:
        flight = db.search_flights("JFK", "LAX", "2026-12-10", "business", 2)[0]
        before = db.get_flight(flight["flight_number"], "2026-12-10")["cabins"]["business"]["seats_left"]
        booking = db.book_flight(flight["flight_number"], "2026-12-10", "business", "Mary-Jane O'Neil", 2)
        assert len(booking["confirmation_code"]) == 6 and booking["status"] == "booked"
        assert booking["total_price"] == pytest.approx(2 * flight["price_per_passenger"])
        assert db.get_flight(flight["flight_number"], "2026-12-10")["cabins"]["business"]["seats_left"] == before - 2
        assert db.get_booking(booking["confirmation_code"].lower()) == booking
        cancelled = db.cancel_booking(booking["confirmation_code"])
        assert cancelled["status"] == "cancelled"
        assert db.get_flight(flight["flight_number"], "2026-12-10")["cabins"]["business"]["seats_left"] == before
        with pytest.raises(BookingError, match="already cancelled"):
            db.cancel_booking(booking["confirmation_code"])


def test_sold_out_cabin_and_failed_booking_change_nothing(db_copy: Path) -> None:
    conn = sqlite3.connect(db_copy)
    number, day = conn.execute("SELECT flight_number, departure_date FROM flights WHERE seats_first = 0").fetchone()
    conn.close()
    with FlightDatabase(db_copy) as db:
        bookings_before = db.list_bookings()
        with pytest.raises(BookingError, match="fewer than 1 seats"):
            db.book_flight(number, day, "first", "Ann Lee", 1)
        assert db.list_bookings() == bookings_before


def test_read_only_mode_refuses_writes(template_db: Path) -> None:
    with FlightDatabase(template_db, read_only=True) as db:
        flight = db.search_flights("BOS", "ATL", "2026-12-03")[0]
        with pytest.raises(BookingError, match="read-only"):
            db.book_flight(flight["flight_number"], "2026-12-03", "economy", "Ann Lee", 1)


def _book_last_seat(path: str, number: str, day: str, name: str, results: multiprocessing.Queue) -> None:
    try:
        with FlightDatabase(path) as db:
            results.put(("ok", db.book_flight(number, day, "first", name, 1)["confirmation_code"]))
    except BookingError as exc:
        results.put(("error", str(exc)))


def test_two_processes_race_for_the_last_seat(db_copy: Path) -> None:
    conn = sqlite3.connect(db_copy)
    number, day = conn.execute("SELECT flight_number, departure_date FROM flights WHERE status = 'scheduled'"
                               " AND seats_first > 0 LIMIT 1").fetchone()
    conn.execute("UPDATE flights SET seats_first = 1 WHERE flight_number = ? AND departure_date = ?", (number, day))
    conn.commit()
    conn.close()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    racers = [context.Process(target=_book_last_seat, args=(str(db_copy), number, day, name, results))
              for name in ("Ann Lee", "Bob Stone")]
    for racer in racers:
        racer.start()
    outcomes = [results.get(timeout=60) for _ in racers]
    for racer in racers:
        racer.join(timeout=60)
    assert sorted(kind for kind, _ in outcomes) == ["error", "ok"]
    with FlightDatabase(db_copy, read_only=True) as db:
        assert db.get_flight(number, day)["cabins"]["first"]["seats_left"] == 0
        assert len(db.list_bookings()) == 1


def test_episode_isolation_and_reset_time(template_db: Path, tmp_path: Path) -> None:
    episode = EpisodeDatabase(template_db, tmp_path, worker_id=3)
    with FlightDatabase(episode.path) as db:
        flight = db.search_flights("SEA", "SFO", "2026-12-05")[0]
        db.book_flight(flight["flight_number"], "2026-12-05", "economy", "Ann Lee", 1)
        assert len(db.list_bookings()) == 1
        seconds = episode.reset(code_salt="episode-2")
        assert db.list_bookings() == []  # the same open connection sees the restored file
        assert db.metadata("code_salt") == "episode-2"
    assert content_hash(episode.path) != content_hash(template_db)  # only the salt differs
    episode.reset(code_salt=0)
    assert content_hash(episode.path) == content_hash(template_db)
    print(f"reset took {seconds * 1000:.1f} ms")
    assert seconds < 1.0  # a sanity bound, not a benchmark (see benchmarks/bench_db.py)
    episode.close()


def test_confirmation_codes_depend_on_salt(template_db: Path, tmp_path: Path) -> None:
    episode = EpisodeDatabase(template_db, tmp_path)
    codes = []
    for salt in ("a", "b", "a"):
        episode.reset(code_salt=salt)
        with FlightDatabase(episode.path) as db:
            flight = db.search_flights("SEA", "SFO", "2026-12-05")[0]
            booking = db.book_flight(flight["flight_number"], "2026-12-05", "economy", "Ann Lee")
            codes.append(booking["confirmation_code"])
    assert codes[0] == codes[2] != codes[1]
    episode.close()
