"""MCP server exposing the flight database as booking tools (official ``mcp`` SDK, stdio transport).

    python mcp-server/database_server.py --db PATH [--read-only]

Tools: list_airports, search_flights, get_flight, get_booking, and (unless ``--read-only``) book_flight and
cancel_booking. A bad argument comes back as an MCP tool error with one clear line; the server keeps serving.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from database import READ_TOOLS, WRITE_TOOLS, BookingError, FlightDatabase, FlightTools


def _as_tool_error(function: Callable[..., Any]) -> Callable[..., Any]:
    """Turn any failure into a one-line ToolError; never let a traceback reach the client."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except BookingError as exc:
            raise ToolError(str(exc)) from None
        except Exception as exc:  # an unexpected failure: say what kind, keep the server alive
            raise ToolError(f"internal error ({type(exc).__name__})") from None

    return wrapper


def create_server(db_path: str | Path, read_only: bool = False) -> MCPServer:
    """Build the server with one tool per :class:`FlightTools` method (write tools omitted when read-only)."""
    tools = FlightTools(FlightDatabase(db_path, read_only=read_only))
    server = MCPServer("flight-database", instructions="Search, book and cancel flights in the flight database.")
    for name in READ_TOOLS + (() if read_only else WRITE_TOOLS):
        server.tool(name=name)(_as_tool_error(getattr(tools, name)))
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Flight database MCP server (stdio)")
    parser.add_argument("--db", required=True, help="SQLite database file")
    parser.add_argument("--read-only", action="store_true", help="serve only the read tools, open the file mode=ro")
    args = parser.parse_args(argv)
    if not Path(args.db).exists():
        parser.error(f"--db: no such file {args.db}")
    create_server(args.db, read_only=args.read_only).run("stdio")


if __name__ == "__main__":
    main()
