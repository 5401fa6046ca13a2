"""The booking tools, as typed, documented functions over one :class:`FlightDatabase`.

The MCP server publishes these methods as its tools (their type hints and docstrings are the schema), and both
transports call them through :meth:`FlightTools.call`, which checks the arguments against those same type hints
with :func:`validate_tool_arguments` before running the tool. The in-process client and the MCP server therefore
accept and refuse exactly the same arguments, with the same one-line errors (the MCP server does not let pydantic
coerce ``"2"`` or ``true`` to an int first). There is deliberately no tool that runs arbitrary SQL.
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any

from database.flight_db import BookingError, FlightDatabase, _one_line

READ_TOOLS = ("list_airports", "search_flights", "get_flight", "get_booking")
WRITE_TOOLS = ("book_flight", "cancel_booking")


class FlightTools:
    """Tool functions over one database. Each returns a JSON-serialisable dict or raises ``BookingError``."""

    def __init__(self, db: FlightDatabase):
        self.db = db

    def call(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run tool ``name`` on ``arguments`` checked by :func:`validate_tool_arguments` (the one entry point of both
        transports). The caller decides which tools it offers (``READ_TOOLS`` only, when read-only)."""
        return getattr(self, name)(**validate_tool_arguments(name, arguments))

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


_JSON_TYPE_NAMES = {str: "a string", int: "an integer"}


@functools.cache
def _signature(name: str) -> tuple[list[inspect.Parameter], dict[str, type]]:
    """The parameters (without ``self``) and their annotated types of tool ``name``, read once per tool."""
    method = getattr(FlightTools, name)
    parameters = [p for p in inspect.signature(method).parameters.values() if p.name != "self"]
    hints = typing.get_type_hints(method)
    return parameters, {parameter.name: hints[parameter.name] for parameter in parameters}


def validate_tool_arguments(name: str, arguments: object) -> dict[str, Any]:
    """Check a tool call's arguments against the tool's signature; return them as keyword arguments.

    Strict JSON types: a ``str`` parameter takes only a string (not ``null``), an ``int`` one only an integer (not a
    boolean, a float or a numeric string). Missing required and unexpected arguments are refused. What the values
    mean (dates, cabins, names, ...) is checked by the tool itself.

    Raises:
        BookingError: one line, "invalid arguments for TOOL: ...", naming the argument and the value received.
    """
    if name not in READ_TOOLS + WRITE_TOOLS:
        raise BookingError(f"Unknown tool: {_one_line(name)}")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise BookingError(f"invalid arguments for {name}: expected an object, got {_one_line(arguments)}")
    parameters, hints = _signature(name)
    known = hints.keys()
    for key in arguments:
        if key not in known:
            raise BookingError(f"invalid arguments for {name}: unexpected argument {_one_line(key)}")
    for parameter in parameters:
        if parameter.name not in arguments:
            if parameter.default is inspect.Parameter.empty:
                raise BookingError(f"invalid arguments for {name}: missing argument {parameter.name!r}")
            continue
        value, expected = arguments[parameter.name], hints[parameter.name]
        if isinstance(value, bool) or not isinstance(value, expected):  # bool is an int subclass; JSON true is not
            raise BookingError(f"invalid arguments for {name}: {parameter.name} must be {_JSON_TYPE_NAMES[expected]},"
                               f" got {_one_line(value)}")
    return dict(arguments)
