"""MCP server exposing the flight database as booking tools (official ``mcp`` SDK, stdio transport).

    python mcp-server/database_server.py --db PATH [--read-only]

Tools: list_airports, search_flights, get_flight, get_booking, and (unless ``--read-only``) book_flight and
cancel_booking. A bad argument comes back as an MCP tool error with one clear line; the server keeps serving. A line
that is not a valid JSON-RPC message gets a JSON-RPC error response (the SDK alone would drop it unanswered).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator, Collection
from io import TextIOWrapper
from pathlib import Path
from typing import Any

import anyio
from mcp import types
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ConfigDict

from database import READ_TOOLS, WRITE_TOOLS, BookingError, FlightDatabase, FlightTools
from database.flight_db import _one_line
from database.tools import validate_tool_arguments


class _UncheckedArguments(ArgModelBase):
    """Hands a call's arguments to the tool as received.

    The SDK would validate them with pydantic first, coercing ``"2"`` and ``true`` to ``2`` and ``1`` and answering
    bad ones with a many-line message; instead :meth:`FlightTools.call` checks them, exactly as it does in process.
    """

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _tool(tools: FlightTools, name: str) -> Tool:
    """The MCP tool ``name``: schema and description from the typed method, arguments checked by ``tools.call``."""

    def call(**arguments: Any) -> dict[str, Any]:
        try:
            return tools.call(name, arguments)
        except BookingError as exc:
            raise ToolError(str(exc)) from None
        except Exception as exc:  # an unexpected failure: say what kind, keep the server alive
            raise ToolError(f"internal error ({type(exc).__name__})") from None

    typed = Tool.from_function(getattr(tools, name), name=name)
    unchecked = typed.fn_metadata.model_copy(update={"arg_model": _UncheckedArguments})
    return typed.model_copy(update={"fn": call, "fn_metadata": unchecked})


def create_server(db_path: str | Path, read_only: bool = False) -> MCPServer:
    """Build the server with one tool per :class:`FlightTools` method (write tools omitted when read-only)."""
    tools = FlightTools(FlightDatabase(db_path, read_only=read_only))
    return MCPServer("flight-database", instructions="Search, book and cancel flights in the flight database.",
                     tools=[_tool(tools, name) for name in READ_TOOLS + (() if read_only else WRITE_TOOLS)])


def rejection(line: str, tools: Collection[str]) -> types.JSONRPCError | None:
    """The error response to one stdin line, or None to hand the line to the SDK.

    JSON-RPC 2.0 answers every malformed request: Parse error for text that is not JSON, Invalid Request for a
    bad envelope (not an object, ``jsonrpc`` not "2.0", ``method`` missing or not a string, an ``id`` that is not a
    string or an integer), Invalid params for ``params`` that is not an object; with the request's id when it is a
    valid one, else ``null``. The SDK would drop all of these unanswered (and take a request with a bad ``id`` for a
    notification). A malformed *response* (``result`` or ``error``, no ``method``) answers nothing of ours and is
    not answered. A ``tools/call`` whose ``arguments`` is not an object gets the one line the in-process client
    gives, where the SDK would answer a bare "Invalid request parameters".
    """
    if not line.strip():
        return None
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return _error(None, types.PARSE_ERROR, "Parse error: the line is not valid JSON")
    if not isinstance(data, dict):
        return _error(None, types.INVALID_REQUEST, f"Invalid Request: expected a JSON object, got {_one_line(data)}")
    if "method" not in data and ("result" in data or "error" in data):
        return None
    request_id, params = data.get("id"), data.get("params")
    valid_id = isinstance(request_id, str) or (isinstance(request_id, int) and not isinstance(request_id, bool))
    reply_id = request_id if valid_id else None
    if data.get("jsonrpc") != "2.0":
        problem = f'jsonrpc must be "2.0", got {_one_line(data.get("jsonrpc"))}'
    elif "method" not in data:
        problem = "method is missing"
    elif not isinstance(data["method"], str):
        problem = f"method must be a string, got {_one_line(data['method'])}"
    elif "id" in data and not valid_id:
        problem = f"id must be a string or an integer, got {_one_line(request_id)}"
    elif not isinstance(params, dict | None):
        return _error(reply_id, types.INVALID_PARAMS, f"Invalid params: params must be an object, got "
                                                      f"{_one_line(params)}")
    elif (data["method"] == "tools/call" and params and params.get("name") in tools
          and not isinstance(params.get("arguments"), dict | None)):
        try:
            validate_tool_arguments(params["name"], params["arguments"])
        except BookingError as exc:  # always: the arguments are not an object
            return _error(reply_id, types.INVALID_PARAMS, str(exc))
        return None
    else:
        try:  # the SDK's own check, for anything the envelope checks above do not name
            types.jsonrpc_message_adapter.validate_json(line, by_name=False)
            return None
        except ValueError as exc:  # pydantic's ValidationError
            problem = f"not a valid JSON-RPC message ({_one_line(str(exc).splitlines()[0], 80)})"
    return _error(reply_id, types.INVALID_REQUEST, f"Invalid Request: {problem}")


def _error(request_id: str | int | None, code: int, message: str) -> types.JSONRPCError:
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message))


async def serve_stdio(server: MCPServer, tools: Collection[str]) -> None:
    """``server.run("stdio")``, with each line :func:`rejection` refuses answered here instead of reaching the SDK.

    The SDK's stdio transport reads its lines from ``checked_lines``; the error responses go out through a clone of
    the transport's write stream, so they are serialised with the server's own replies. Given stdin, the SDK leaves
    fd 0 as it is instead of pointing it at the null device; no tool reads stdin or starts a child that could.
    """
    replies_send, replies_receive = anyio.create_memory_object_stream[types.JSONRPCError](16)

    async def checked_lines() -> AsyncIterator[str]:
        stdin = anyio.wrap_file(TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"))
        async with replies_send:
            async for line in stdin:
                error = rejection(line, tools)
                if error is None:
                    yield line
                else:
                    await replies_send.send(error)

    async def answer(write_stream: Any) -> None:
        async with write_stream, replies_receive:
            async for error in replies_receive:
                await write_stream.send(SessionMessage(error))

    async with stdio_server(stdin=checked_lines()) as (read_stream, write_stream):
        async with anyio.create_task_group() as group:
            group.start_soon(answer, write_stream.clone())
            lowlevel = server._lowlevel_server  # what MCPServer.run_stdio_async runs; the SDK has no public handle
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Flight database MCP server (stdio)")
    parser.add_argument("--db", required=True, help="SQLite database file")
    parser.add_argument("--read-only", action="store_true", help="serve only the read tools, open the file mode=ro")
    args = parser.parse_args(argv)
    try:  # a missing file, a directory or a non-database stops the server here, with one line
        server = create_server(args.db, read_only=args.read_only)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(f"--db: {exc}")
    anyio.run(serve_stdio, server, READ_TOOLS + (() if args.read_only else WRITE_TOOLS))


if __name__ == "__main__":
    main()
