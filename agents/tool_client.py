"""How the booking agent reaches the database: through tools, over MCP stdio or in process.

Both clients expose the same async interface and return identical :class:`ToolResult` values for the same calls
(both run tools through ``FlightTools.call``, which checks arguments once, the same way), so callers pick
``transport: mcp`` (a real MCP server subprocess) or ``transport: inprocess`` (the same tool functions called
directly, much faster) in config.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from database import READ_TOOLS, WRITE_TOOLS, BookingError, FlightDatabase, FlightTools
from database.tools import validate_tool_arguments

SERVER_SCRIPT = Path(__file__).resolve().parents[1] / "mcp-server" / "database_server.py"
Transport = Literal["mcp", "inprocess"]


@dataclass(frozen=True)
class ToolResult:
    """Outcome of one tool call: ``data`` when ``ok``, else a one-line ``error``."""

    ok: bool
    data: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class ToolCall:
    """One tool call made during an episode, kept for the verifier and for logs."""

    name: str
    arguments: dict[str, Any]
    result: ToolResult

    def describe(self, max_chars: int = 240) -> str:
        """One line for logs and conversation views: ``name {arguments} -> ok {data}`` or ``-> error: reason``,
        the JSON cut to `max_chars` characters in all (marked ``...``)."""
        arguments = json.dumps(self.arguments, sort_keys=True, default=str)
        answer = (f"ok {json.dumps(self.result.data, sort_keys=True, default=str)}" if self.result.ok
                  else f"error: {self.result.error}")
        line = " ".join(f"{self.name} {arguments} -> {answer}".split())
        return line if len(line) <= max_chars else line[:max_chars - 3] + "..."


class ToolClient(Protocol):
    async def start(self) -> None: ...
    async def call(self, name: str, arguments: dict[str, Any] | None = None) -> ToolResult: ...
    async def close(self) -> None: ...
    def tool_names(self) -> tuple[str, ...]: ...


class InProcessToolClient:
    """Calls :class:`FlightTools` methods directly on a database file (no subprocess)."""

    def __init__(self, db_path: str | os.PathLike, read_only: bool = False):
        self.db_path, self.read_only = Path(db_path), read_only
        self._tools: FlightTools | None = None

    def tool_names(self) -> tuple[str, ...]:
        return READ_TOOLS + (() if self.read_only else WRITE_TOOLS)

    async def start(self) -> None:
        if self._tools is None:
            self._tools = FlightTools(FlightDatabase(self.db_path, read_only=self.read_only))

    async def call(self, name: str, arguments: dict[str, Any] | None = None) -> ToolResult:
        await self.start()
        if name not in self.tool_names():
            return ToolResult(ok=False, error=f"Unknown tool: {name}")
        try:  # FlightTools.call checks the arguments exactly as the MCP server does
            return ToolResult(ok=True, data=self._tools.call(name, arguments))
        except BookingError as exc:
            return ToolResult(ok=False, error=str(exc))

    async def close(self) -> None:
        if self._tools is not None:
            self._tools.db.close()
            self._tools = None


class MCPToolClient:
    """Starts ``mcp-server/database_server.py`` as a subprocess and calls its tools over stdio.

    The MCP session lives in one background task (anyio contexts must be entered and left by the same task);
    calls from any task are handed to it through a queue.
    """

    def __init__(self, db_path: str | os.PathLike, read_only: bool = False, call_timeout: float = 30.0):
        self.db_path, self.read_only, self.call_timeout = Path(db_path), read_only, call_timeout
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    def tool_names(self) -> tuple[str, ...]:
        return READ_TOOLS + (() if self.read_only else WRITE_TOOLS)

    async def start(self) -> None:
        if self._task is not None:
            return
        self._queue = asyncio.Queue()
        ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._serve(ready))
        await ready  # raises if the server failed to start

    async def _serve(self, ready: asyncio.Future) -> None:
        from mcp import ClientSession
        from mcp.client.stdio import StdioServerParameters, stdio_client

        args = [str(SERVER_SCRIPT), "--db", str(self.db_path)] + (["--read-only"] if self.read_only else [])
        params = StdioServerParameters(command=sys.executable, args=args, env=dict(os.environ))
        try:
            async with stdio_client(params, errlog=open(os.devnull, "w")) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    ready.set_result(None)
                    while (item := await self._queue.get()) is not None:
                        name, arguments, future = item
                        try:
                            result = await session.call_tool(name, arguments, read_timeout_seconds=self.call_timeout)
                            future.set_result(_from_mcp_result(name, result))
                        except Exception as exc:  # transport failure: report, keep serving
                            future.set_result(ToolResult(ok=False, error=f"MCP call failed: {exc}".splitlines()[0]))
        except Exception as exc:
            if not ready.done():
                ready.set_exception(RuntimeError(f"could not start the MCP database server: {exc}"))

    async def call(self, name: str, arguments: dict[str, Any] | None = None) -> ToolResult:
        if not isinstance(arguments, dict | None):
            # MCP carries a call's arguments only as an object (the SDK would refuse to send ``[]``, and ``or {}``
            # would turn it into no arguments): refuse it with the in-process client's line.
            if name not in self.tool_names():
                return ToolResult(ok=False, error=f"Unknown tool: {name}")
            try:
                validate_tool_arguments(name, arguments)
            except BookingError as exc:  # always: the arguments are not an object
                return ToolResult(ok=False, error=str(exc))
        await self.start()
        if self._task.done():
            return ToolResult(ok=False, error="MCP server is not running")
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((name, {} if arguments is None else arguments, future))
        return await future

    async def close(self) -> None:
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None


def _from_mcp_result(name: str, result: Any) -> ToolResult:
    if result.is_error:
        text = " ".join(getattr(block, "text", "") for block in result.content).strip()
        prefix = f"Error executing tool {name}: "
        text = text[len(prefix):] if text.startswith(prefix) else text
        return ToolResult(ok=False, error=text.splitlines()[0] if text else "tool error")
    return ToolResult(ok=True, data=result.structured_content)


def make_tool_client(transport: Transport, db_path: str | os.PathLike, read_only: bool = False) -> ToolClient:
    """The tool client for ``transport`` ("mcp" or "inprocess") over ``db_path``."""
    if transport == "mcp":
        return MCPToolClient(db_path, read_only=read_only)
    if transport == "inprocess":
        return InProcessToolClient(db_path, read_only=read_only)
    raise ValueError(f"transport must be 'mcp' or 'inprocess', got {transport!r}")
