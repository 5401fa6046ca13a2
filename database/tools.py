"""The booking tools, as typed, documented functions over one :class:`FlightDatabase`.

The MCP server registers these bound methods as its tools (their type hints and docstrings are the schema), and
the in-process tool client calls the very same methods, so both transports return identical results.
There is deliberately no tool that runs arbitrary SQL.
"""

from __future__ import annotations

from typing import Any

from database.flight_db import FlightDatabase

READ_TOOLS = ("list_airports", "search_flights", "get_flight", "get_booking")
WRITE_TOOLS = ("book_flight", "cancel_booking")


class FlightTools:
    """Tool functions over one database. Each returns a JSON-serialisable dict or raises ``BookingError``."""

    def __init__(self, db: FlightDatabase):
        self.db = db

    def list_airports(self) -> dict[str, Any]:
        """List every airport served: IATA code, city, state and airport name."""
        airports = self.db.list_airports()
        return {"airports": airports, "count": len(airports)}

    def search_flights(
        self, origin: str, destination: str, date: str, cabin: str = "economy", passengers: int = 1
    ) -> dict[str, Any]:
        """Search scheduled flights with enough seats left.

        Args:
            origin: departure airport, as an IATA code ("BOS") or a city name ("Boston").
            destination: arrival airport, as an IATA code or a city name.
            date: departure date, YYYY-MM-DD.
            cabin: economy, business or first.
            passengers: number of travellers, 1 to 9.
        """
        flights = self.db.search_flights(origin, destination, date, cabin, passengers)
        return {"flights": flights, "count": len(flights)}

    def get_flight(self, flight_number: str, date: str) -> dict[str, Any]:
        """Details of one flight on one day: times, status, and each cabin's price and seats left.

        Args:
            flight_number: airline code and number, e.g. "UA1234".
            date: departure date, YYYY-MM-DD.
        """
        return self.db.get_flight(flight_number, date)

    def book_flight(
        self, flight_number: str, date: str, cabin: str, passenger_name: str, passengers: int = 1
    ) -> dict[str, Any]:
        """Book seats on a flight and return the booking with its 6-character confirmation code.

        Args:
            flight_number: airline code and number, e.g. "UA1234".
            date: departure date, YYYY-MM-DD.
            cabin: economy, business or first.
            passenger_name: the lead passenger's full name (letters, spaces, ' - and . only; at most 64).
            passengers: number of travellers, 1 to 9.
        """
        return self.db.book_flight(flight_number, date, cabin, passenger_name, passengers)

    def get_booking(self, confirmation_code: str) -> dict[str, Any]:
        """Look up a booking by its 6-character confirmation code.

        Args:
            confirmation_code: the code given at booking time, e.g. "Q7K2ZP".
        """
        return self.db.get_booking(confirmation_code)

    def cancel_booking(self, confirmation_code: str) -> dict[str, Any]:
        """Cancel a booking and release its seats.

        Args:
            confirmation_code: the code given at booking time.
        """
        return self.db.cancel_booking(confirmation_code)
