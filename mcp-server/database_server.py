"""MCP server exposing the flight database as booking tools (official ``mcp`` SDK, stdio transport).

    python mcp-server/database_server.py --db PATH [--read-only]

Tools: list_airports, search_flights, get_flight, get_booking, and (unless ``--read-only``) book_flight and
cancel_booking. A bad argument comes back as an MCP tool error with one clear line; the server keeps serving.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from pydantic import ConfigDict

from database import READ_TOOLS, WRITE_TOOLS, BookingError, FlightDatabase, FlightTools


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Flight database MCP server (stdio)")
    parser.add_argument("--db", required=True, help="SQLite database file")
    parser.add_argument("--read-only", action="store_true", help="serve only the read tools, open the file mode=ro")
    args = parser.parse_args(argv)
    try:  # a missing file, a directory or a non-database stops the server here, with one line
        server = create_server(args.db, read_only=args.read_only)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(f"--db: {exc}")
    server.run("stdio")


if __name__ == "__main__":
    main()
