"""Several real MCP server processes on one database file, reads and bookings overlapping.

Each server runs its tools on worker threads that share one SQLite connection, so the interleaving that once
refused bookings with seats free (a read lock held by one thread while another began a booking) happens here.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from agents.tool_client import SERVER_SCRIPT

SERVERS = 3
ROUNDS = 25  # per server: one booking and two reads each, all sent at once
SEATS = 1000


async def _book_and_read(db: Path, flight: tuple[str, str, str, str]) -> list[tuple[str, bool, str]]:
    number, day, origin, destination = flight
    args = [str(SERVER_SCRIPT), "--db", str(db)]
    async with stdio_client(StdioServerParameters(command=sys.executable, args=args)) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            calls = []
            for _ in range(ROUNDS):
                calls.append(("book_flight", {"flight_number": number, "date": day, "cabin": "economy",
                                              "passenger_name": "Ann Lee"}))
                calls.append(("search_flights", {"origin": origin, "destination": destination, "date": day}))
                calls.append(("get_flight", {"flight_number": number, "date": day}))
            results = await asyncio.gather(*(session.call_tool(name, arguments) for name, arguments in calls))
    return [(name, result.is_error, " ".join(getattr(block, "text", "") for block in result.content))
            for (name, _), result in zip(calls, results, strict=True)]


async def _all_servers(db: Path, flight: tuple[str, str, str, str]) -> list[tuple[str, bool, str]]:
    outcomes = await asyncio.gather(*(_book_and_read(db, flight) for _ in range(SERVERS)))
    return [outcome for server in outcomes for outcome in server]


def test_bookings_with_free_seats_succeed_while_other_servers_read_and_book(db_copy: Path) -> None:
    conn = sqlite3.connect(db_copy)
    flight = conn.execute("SELECT flight_number, departure_date, origin, destination FROM flights"
                          " WHERE status = 'scheduled' LIMIT 1").fetchone()
    conn.execute("UPDATE flights SET seats_economy = ? WHERE flight_number = ? AND departure_date = ?",
                 (SEATS, flight[0], flight[1]))
    conn.commit()
    conn.close()

    outcomes = asyncio.run(_all_servers(db_copy, flight))

    refused = [(name, text) for name, is_error, text in outcomes if is_error]
    assert refused == []  # every booking had a free seat; every read names a real flight
    conn = sqlite3.connect(db_copy)
    (seats_left,) = conn.execute("SELECT seats_economy FROM flights WHERE flight_number = ? AND departure_date = ?",
                                 flight[:2]).fetchone()
    (bookings,) = conn.execute("SELECT count(*) FROM bookings").fetchone()
    conn.close()
    assert bookings == SERVERS * ROUNDS  # none lost
    assert seats_left == SEATS - SERVERS * ROUNDS  # none oversold
