"""The MCP database server, driven by a real MCP client session over stdio against a real server process."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from agents.tool_client import SERVER_SCRIPT, InProcessToolClient, MCPToolClient, make_tool_client
from database import READ_TOOLS, WRITE_TOOLS
from tests.conftest import table_contents

INJECTIONS = [
    "'; DROP TABLE bookings; --",
    "Robert'); DELETE FROM flights; --",
    "x' OR '1'='1",
    "BOS' UNION SELECT * FROM bookings --",
    "\" OR \"\"=\"",
]


async def _session_calls(db: Path, calls: list[tuple[str, dict]], read_only: bool = False) -> tuple[set, list]:
    """Start a real server process, list its tools and run ``calls``; return (tool names, results)."""
    args = [str(SERVER_SCRIPT), "--db", str(db)] + (["--read-only"] if read_only else [])
    async with stdio_client(StdioServerParameters(command=sys.executable, args=args)) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            names = {tool.name for tool in (await session.list_tools()).tools}
            results = [await session.call_tool(name, arguments) for name, arguments in calls]
    return names, results


def _text(result) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def test_tools_happy_path_over_stdio(db_copy: Path) -> None:
    calls = [
        ("list_airports", {}),
        ("search_flights", {"origin": "New York", "destination": "LAX", "date": "2026-12-10", "cabin": "business",
                            "passengers": 2}),
    ]
    names, (airports, search) = asyncio.run(_session_calls(db_copy, calls))
    assert names == set(READ_TOOLS + WRITE_TOOLS)
    assert "execute_sql" not in names and not any("sql" in name for name in names)
    assert not airports.is_error and airports.structured_content["count"] >= 25
    flight = search.structured_content["flights"][0]
    book = ("book_flight", {"flight_number": flight["flight_number"], "date": "2026-12-10", "cabin": "business",
                            "passenger_name": "Ann Lee", "passengers": 2})
    _, (booked,) = asyncio.run(_session_calls(db_copy, [book]))
    code = booked.structured_content["confirmation_code"]
    _, (got, flight_now, cancelled) = asyncio.run(_session_calls(db_copy, [
        ("get_booking", {"confirmation_code": code}),
        ("get_flight", {"flight_number": flight["flight_number"], "date": "2026-12-10"}),
        ("cancel_booking", {"confirmation_code": code}),
    ]))
    assert got.structured_content == booked.structured_content
    assert flight_now.structured_content["cabins"]["business"]["seats_left"] == flight["seats_left"] - 2
    assert cancelled.structured_content["status"] == "cancelled"


BAD_CALLS = [
    ("search_flights", {"origin": "Atlantis", "destination": "ATL", "date": "2026-12-03"}, "unknown airport"),
    ("search_flights", {"origin": "BOS", "destination": "ATL", "date": "Dec 3rd"}, "malformed date"),
    ("search_flights", {"origin": "BOS", "destination": "ATL", "date": "2026-12-03", "passengers": 0},
     "between 1 and 9"),
    ("search_flights", {"origin": "BOS", "destination": "ATL", "date": "2026-12-03", "passengers": -3},
     "between 1 and 9"),
    ("book_flight", {"flight_number": "ZZ9999", "date": "2026-12-03", "cabin": "economy", "passenger_name": "Ann Lee"},
     "no flight ZZ9999"),
    ("book_flight", {"flight_number": "AA100", "date": "2026-12-03", "cabin": "economy", "passenger_name": "A" * 80},
     "too long"),
    ("book_flight", {"flight_number": "AA100", "date": "2026-12-03", "cabin": "economy",
                     "passenger_name": "Ann\x00Lee"}, "control characters"),
    ("get_booking", {"confirmation_code": "NOPE00"}, "no booking"),
    ("cancel_booking", {"confirmation_code": "12"}, "malformed confirmation code"),
    ("get_flight", {"flight_number": "AA100"}, "date"),  # missing argument: schema validation
]


def test_bad_arguments_give_one_line_errors_and_server_keeps_serving(db_copy: Path) -> None:
    calls = [(name, arguments) for name, arguments, _ in BAD_CALLS] + [("list_airports", {})]
    _, results = asyncio.run(_session_calls(db_copy, calls))
    for (name, _, expected), result in zip(BAD_CALLS, results, strict=False):
        text = _text(result)
        assert result.is_error, name
        assert expected in text, (name, text)
        assert "Traceback" not in text and "sqlite3" not in text
    assert not results[-1].is_error  # still serving


def test_sold_out_cabin_is_a_tool_error(db_copy: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(db_copy)
    number, day = conn.execute("SELECT flight_number, departure_date FROM flights WHERE seats_first = 0"
                               " AND status = 'scheduled'").fetchone()
    conn.close()
    _, (result,) = asyncio.run(_session_calls(db_copy, [("book_flight", {
        "flight_number": number, "date": day, "cabin": "first", "passenger_name": "Ann Lee"})]))
    assert result.is_error and "seats left" in _text(result)


def test_read_only_server_has_no_write_tools(db_copy: Path) -> None:
    before = table_contents(db_copy)
    names, (result,) = asyncio.run(_session_calls(db_copy, [("book_flight", {
        "flight_number": "AA100", "date": "2026-12-03", "cabin": "economy", "passenger_name": "Ann Lee"})],
        read_only=True))
    assert names == set(READ_TOOLS)
    assert result.is_error
    assert table_contents(db_copy) == before


def test_sql_injection_strings_change_nothing(db_copy: Path) -> None:
    legit_flight = asyncio.run(_session_calls(db_copy, [("search_flights", {
        "origin": "SEA", "destination": "SFO", "date": "2026-12-05"})]))[1][0].structured_content["flights"][0]
    calls = [("book_flight", {"flight_number": legit_flight["flight_number"], "date": "2026-12-05",
                              "cabin": "economy", "passenger_name": "Ann Lee"})]
    for text in INJECTIONS:
        calls += [
            ("book_flight", {"flight_number": legit_flight["flight_number"], "date": "2026-12-05",
                             "cabin": "economy", "passenger_name": text}),
            ("search_flights", {"origin": text, "destination": "SFO", "date": "2026-12-05"}),
            ("get_booking", {"confirmation_code": text}),
            ("cancel_booking", {"confirmation_code": text}),
            ("get_flight", {"flight_number": text, "date": "2026-12-05"}),
        ]
    calls.append(("list_airports", {}))
    _, results = asyncio.run(_session_calls(db_copy, calls))
    assert not results[0].is_error and all(r.is_error for r in results[1:-1])
    assert not results[-1].is_error
    # Compare with a control database where only the legitimate booking was made, in process.
    after = table_contents(db_copy)
    assert len(after["bookings"]) == 1 and after["bookings"][0][4] == "Ann Lee"
    assert len(after["passengers"]) == 1
    assert len(after["flights"]) > 2000 and len(after["airports"]) >= 25


@pytest.mark.parametrize("read_only", [False, True])
def test_mcp_and_inprocess_transports_return_equal_results(template_db: Path, tmp_path: Path, read_only: bool) -> None:
    import shutil

    paths = {name: shutil.copy(template_db, tmp_path / f"{name}.db") for name in ("mcp", "inprocess")}
    script = [
        ("list_airports", {}),
        ("search_flights", {"origin": "Chicago", "destination": "DEN", "date": "2026-12-20", "passengers": 3}),
        ("get_flight", {"flight_number": "ZZ1", "date": "2026-12-20"}),
        ("search_flights", {"origin": "Chicago", "destination": "DEN", "date": "20 Dec"}),
        ("get_booking", {"confirmation_code": "AAAAAA"}),
    ]

    async def run(transport: str) -> list:
        client = make_tool_client(transport, paths[transport], read_only=read_only)
        outcomes = [await client.call(name, arguments) for name, arguments in script]
        flight = outcomes[1].data["flights"][0]
        booked = await client.call("book_flight", {"flight_number": flight["flight_number"], "date": "2026-12-20",
                                                   "cabin": "economy", "passenger_name": "Zoe Park", "passengers": 3})
        outcomes.append(booked)
        if booked.ok:
            code = {"confirmation_code": booked.data["confirmation_code"]}
            outcomes.append(await client.call("get_booking", code))
            outcomes.append(await client.call("cancel_booking", code))
        await client.close()
        return outcomes

    via_mcp, in_process = asyncio.run(run("mcp")), asyncio.run(run("inprocess"))
    assert via_mcp == in_process
    assert isinstance(make_tool_client("mcp", template_db), MCPToolClient)
    assert isinstance(make_tool_client("inprocess", template_db), InProcessToolClient)
    assert in_process[5].ok is (not read_only)
