"""Tool arguments are checked once, identically, whichever transport carries the call (in process or real MCP)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from agents.tool_client import ToolResult, make_tool_client
from tests.conftest import table_contents
from tests.test_mcp_server import _session_calls, _text

# DL2369 flies BOS-ATL on 2026-12-03 with economy seats in the seed-0 database: a wrongly accepted call would book.
BOOK = {"flight_number": "DL2369", "date": "2026-12-03", "cabin": "economy", "passenger_name": "Ann Lee"}
SEARCH = {"origin": "BOS", "destination": "ATL", "date": "2026-12-03"}

# (tool, arguments, text the one-line error must contain)
BAD_ARGUMENTS = [
    ("book_flight", {**BOOK, "passenger_name": None}, "passenger_name must be a string, got None"),
    ("book_flight", {**BOOK, "passengers": "2"}, "passengers must be an integer, got '2'"),
    ("book_flight", {**BOOK, "passengers": True}, "passengers must be an integer, got True"),
    ("book_flight", {**BOOK, "cabin": 1}, "cabin must be a string, got 1"),
    ("search_flights", {**SEARCH, "passengers": 2.0}, "passengers must be an integer, got 2.0"),
    ("search_flights", {**SEARCH, "origin": None}, "origin must be a string, got None"),
    ("search_flights", {**SEARCH, "date": ["2026-12-03"]}, "date must be a string"),
    ("get_flight", {"flight_number": "AA100"}, "missing argument 'date'"),
    ("get_flight", {"flight_number": "AA100", "date": "2026-12-03", "seat": "1A"}, "unexpected argument 'seat'"),
    ("get_booking", {"confirmation_code": 123456}, "confirmation_code must be a string, got 123456"),
    ("cancel_booking", {}, "missing argument 'confirmation_code'"),
    ("list_airports", {"state": "MA"}, "unexpected argument 'state'"),
    ("execute_sql", {"sql": "DROP TABLE bookings"}, "Unknown tool: execute_sql"),
]
GOOD_CALL = ("search_flights", {**SEARCH, "passengers": 2})


async def _results(transport: str, db: Path) -> list[ToolResult]:
    client = make_tool_client(transport, db)
    try:
        return [await client.call(name, arguments) for name, arguments, _ in BAD_ARGUMENTS] + [
            await client.call(*GOOD_CALL)]
    finally:
        await client.close()


def test_bad_arguments_are_refused_identically_by_both_transports(template_db: Path, tmp_path: Path) -> None:
    paths = {name: Path(shutil.copy(template_db, tmp_path / f"{name}.db")) for name in ("mcp", "inprocess")}
    before = table_contents(paths["inprocess"])

    via_mcp, in_process = asyncio.run(_results("mcp", paths["mcp"])), asyncio.run(_results("inprocess",
                                                                                             paths["inprocess"]))

    for (name, arguments, expected), mcp_result, local_result in zip(BAD_ARGUMENTS, via_mcp, in_process,
                                                                      strict=False):
        assert mcp_result == local_result, (name, arguments)
        assert not local_result.ok and expected in local_result.error, (name, arguments, local_result.error)
        assert "\n" not in local_result.error
    assert via_mcp[-1] == in_process[-1] and in_process[-1].ok  # a well-typed call still works on both
    assert table_contents(paths["inprocess"]) == before  # no passenger named "None" was booked
    assert table_contents(paths["mcp"]) == before


def test_mcp_argument_errors_are_one_line_on_the_wire(db_copy: Path) -> None:
    calls = [(name, arguments) for name, arguments, _ in BAD_ARGUMENTS]
    _, results = asyncio.run(_session_calls(db_copy, calls))
    for (name, _, expected), result in zip(BAD_ARGUMENTS, results, strict=True):
        text = _text(result).strip()
        assert result.is_error and expected in text, (name, text)
        assert "\n" not in text, text
