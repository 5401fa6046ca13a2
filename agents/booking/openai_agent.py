"""The booking agent backed by any OpenAI-compatible chat-completions server (OpenAI, vLLM, llama.cpp, Ollama...).

The model gets the database tools as OpenAI function tools whose JSON schemas are derived from the
:class:`database.FlightTools` signatures and docstrings (the same source the MCP server builds its schemas from),
so both backends see the same tool contract. Tool calls run through the agent's :class:`ToolClient` (in process or
over MCP). The agent never raises from ``respond``: a backend that keeps failing yields an ``AgentTurn`` whose
``error`` is set, and the environment ends the episode as an error.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import typing
from datetime import date
from typing import Any

import httpx2 as httpx  # the HTTP client mcp 2.x is built on; the same API as httpx

from agents.booking.base import AgentTurn, Message, OpenAIAgentConfig
from agents.tool_client import ToolCall, ToolClient, ToolResult
from database import FlightTools

SYSTEM_PROMPT = """You are a flight booking assistant for an airline. Today is {today}.
You know nothing about flights, seats, prices or bookings except what the tools return: never invent flight \
numbers, prices, availability or confirmation codes.
How to work:
- Collect origin, destination and travel date; cabin (economy, business or first) defaults to economy and \
passengers to 1. Dates are YYYY-MM-DD.
- Call search_flights and offer the options with flight number, times and price per passenger.
- Ask for the lead passenger's full name. Before booking, state flight, date, cabin, passengers, passenger name \
and total, and wait for the user's explicit yes.
- Only call book_flight after that yes. A booking exists only if book_flight succeeded.
- After a successful booking, tell the user the confirmation code and the booking's details as the tool \
returned them.
- If a tool fails, say so plainly and suggest an alternative. Be concise and friendly."""

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}
_RETRY_STATUSES = {408, 409, 429}  # besides 5xx: transient by definition
_MAX_BACKOFF_SECONDS = 2.0


def _one_line(text: object, limit: int = 200) -> str:
    """A single bounded line, as ``AgentTurn.error`` promises."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _parse_args_section(docstring: str) -> dict[str, str]:
    """``{argument: description}`` from a Google-style ``Args:`` section (continuation lines are joined)."""
    descriptions: dict[str, str] = {}
    in_args, current = False, None
    for raw in docstring.splitlines():
        line = raw.strip()
        if line == "Args:":
            in_args = True
            continue
        if not in_args:
            continue
        if not line or re.fullmatch(r"[A-Z][A-Za-z ]*:", line):  # blank line or the next section ends Args
            if descriptions:
                break
            continue
        match = re.match(r"(\w+)(?: \([^)]*\))?: (.*)", line)
        if match:
            current = match[1]
            descriptions[current] = match[2]
        elif current:
            descriptions[current] += " " + line
    return descriptions


def tool_schema(name: str) -> dict[str, Any]:
    """The OpenAI function-tool definition of ``FlightTools.<name>``, from its signature and docstring."""
    method = getattr(FlightTools, name)
    hints = typing.get_type_hints(method)  # resolves the string annotations of ``from __future__ import annotations``
    doc = inspect.getdoc(method) or ""
    summary = doc.split("\n\n")[0].replace("\n", " ").strip()
    arg_docs = _parse_args_section(doc)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in list(inspect.signature(method).parameters.values())[1:]:  # skip self
        prop: dict[str, Any] = {"type": _JSON_TYPES.get(hints.get(parameter.name), "string")}
        if parameter.name in arg_docs:
            prop["description"] = arg_docs[parameter.name]
        if parameter.default is inspect.Parameter.empty:
            required.append(parameter.name)
        else:
            prop["default"] = parameter.default
        properties[parameter.name] = prop
    return {"type": "function", "function": {
        "name": name, "description": summary,
        "parameters": {"type": "object", "properties": properties, "required": required},
    }}


class _BackendError(Exception):
    """A chat-completions request that failed for good (after retries, or not retryable)."""


class OpenAIBookingAgent:
    """Booking agent that delegates the dialogue to an OpenAI-compatible model with function tools.

    The conversation itself comes from ``respond``'s ``history`` argument. The agent only remembers the tool
    exchanges behind each of its own replies (keyed by the reply's position and text), so later turns still see
    the real search and booking results; ``reset`` forgets them.

    Args:
        tools: how the agent reaches the database.
        config: backend settings (``base_url``, ``model``, ``api_key_env``, ``timeout_seconds``, ``max_retries``,
            ``temperature``, ``max_tool_rounds``).
        today: the date the model is told it is (the database's "today" by default).
    """

    def __init__(self, tools: ToolClient, today: date, config: OpenAIAgentConfig | None = None):
        self.tools = tools
        self.config = config or OpenAIAgentConfig()
        self.today = today
        self.url = self.config.base_url.rstrip("/") + "/chat/completions"
        self.tool_specs = [tool_schema(name) for name in tools.tool_names() if hasattr(FlightTools, name)]
        self.system_prompt = SYSTEM_PROMPT.format(today=self.today.isoformat())
        self.reset(0)

    def reset(self, seed: int | None = None) -> None:
        self.seed = 0 if seed is None else seed
        # history index of an agent reply -> (its text, the tool-call messages that produced it)
        self._exchanges: dict[int, tuple[str, list[dict[str, Any]]]] = {}

    def opening(self) -> str:
        return "Hello! I'm your flight booking assistant. Where would you like to fly, and when?"

    # -- the dialogue ----------------------------------------------------------------------------------------------
    async def respond(self, history: list[Message]) -> AgentTurn:
        """Reply to the last user message of ``history``. Never raises; failures come back as ``error``."""
        calls: list[ToolCall] = []
        try:
            messages = self._messages(history)
            exchange: list[dict[str, Any]] = []
            async with httpx.AsyncClient(timeout=httpx.Timeout(self.config.timeout_seconds)) as client:
                for round_index in range(self.config.max_tool_rounds + 1):
                    # The last round forbids tools so the model has to answer in words.
                    final_round = round_index == self.config.max_tool_rounds
                    reply = await self._complete(client, messages + exchange, allow_tools=not final_round)
                    tool_calls = reply.get("tool_calls") or []
                    if not tool_calls:
                        text = (reply.get("content") or "").strip()
                        if not text:
                            return AgentTurn(text="", tool_calls=calls, error="model returned an empty reply")
                        self._exchanges[len(history)] = (text, exchange)
                        return AgentTurn(text=text, tool_calls=calls)
                    if final_round:
                        break
                    exchange.append({"role": "assistant", "content": reply.get("content"), "tool_calls": tool_calls})
                    for tool_call in tool_calls:
                        exchange.append(await self._run_tool(tool_call, calls))
            return AgentTurn(text="", tool_calls=calls,
                             error=f"model still calling tools after {self.config.max_tool_rounds} rounds")
        except _BackendError as exc:
            return AgentTurn(text="", tool_calls=calls, error=_one_line(exc))
        except Exception as exc:  # never raise into the environment: an error turn ends the episode cleanly
            return AgentTurn(text="", tool_calls=calls, error=_one_line(f"{type(exc).__name__}: {exc}"))

    def _messages(self, history: list[Message]) -> list[dict[str, Any]]:
        """The chat messages for ``history``, with remembered tool exchanges placed before the replies they fed."""
        messages: list[dict[str, Any]] = [{"role": "system", "content": self.system_prompt}]
        for index, message in enumerate(history):
            if message.role == "agent":
                remembered = self._exchanges.get(index)
                if remembered is not None and remembered[0] == message.text:  # same conversation as we answered
                    messages.extend(remembered[1])
                messages.append({"role": "assistant", "content": message.text})
            else:
                messages.append({"role": "user", "content": message.text})
        return messages

    async def _run_tool(self, tool_call: dict[str, Any], calls: list[ToolCall]) -> dict[str, Any]:
        """Execute one requested tool call; the tool message to send back (errors included, for the model to see)."""
        function = tool_call.get("function") or {}
        name = str(function.get("name", ""))
        raw = function.get("arguments") or "{}"
        arguments: Any
        try:
            arguments = raw if isinstance(raw, dict) else json.loads(raw)
        except (json.JSONDecodeError, TypeError) as exc:
            arguments = None
            result = ToolResult(ok=False, error=f"arguments are not valid JSON: {_one_line(exc, 120)}")
        if arguments is not None and not isinstance(arguments, dict):
            arguments, result = None, ToolResult(ok=False, error="arguments must be a JSON object")
        if arguments is not None:
            if name not in self.tools.tool_names():
                result = ToolResult(ok=False, error=f"Unknown tool: {name}")
            else:
                result = await self.tools.call(name, arguments)
        # Keep the raw text of unusable arguments so logs show what the model actually sent.
        calls.append(ToolCall(name, arguments if arguments is not None else {"_raw_arguments": str(raw)}, result))
        content = json.dumps(result.data) if result.ok else json.dumps({"error": result.error})
        return {"role": "tool", "tool_call_id": tool_call.get("id", ""), "content": content}

    # -- the HTTP backend ------------------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.config.api_key_env) if self.config.api_key_env else None
        if key:  # local servers usually need none, so a missing key is not an error
            headers["Authorization"] = f"Bearer {key}"
        return headers

    async def _complete(self, client: httpx.AsyncClient, messages: list[dict[str, Any]],
                        allow_tools: bool) -> dict[str, Any]:
        """POST one chat completion (with retries); the assistant message of the first choice."""
        payload: dict[str, Any] = {"model": self.config.model, "messages": messages,
                                   "temperature": self.config.temperature, "seed": self.seed}
        if self.tool_specs:
            payload["tools"] = self.tool_specs
            payload["tool_choice"] = "auto" if allow_tools else "none"
        last_error = "no attempt made"
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                await asyncio.sleep(min(_MAX_BACKOFF_SECONDS, 0.25 * 2 ** (attempt - 1)))
            try:
                # httpx's timeout bounds each read; wait_for also bounds a server that trickles bytes forever.
                response = await asyncio.wait_for(client.post(self.url, json=payload, headers=self._headers()),
                                                  timeout=self.config.timeout_seconds)
            except (TimeoutError, httpx.TimeoutException):
                last_error = f"timed out after {self.config.timeout_seconds:g}s"
                continue
            except httpx.TransportError as exc:
                last_error = f"connection failed: {type(exc).__name__}: {exc}"
                continue
            if response.status_code >= 500 or response.status_code in _RETRY_STATUSES:
                last_error = f"HTTP {response.status_code}: {response.text[:120]}"
                continue
            if response.status_code >= 400:  # a client error will not fix itself: fail now
                raise _BackendError(f"chat completions HTTP {response.status_code}: {response.text[:160]}")
            try:
                return response.json()["choices"][0]["message"]
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise _BackendError(f"malformed chat completions response ({type(exc).__name__}): "
                                    f"{response.text[:120]}") from None
        raise _BackendError(f"chat completions failed after {self.config.max_retries + 1} attempt(s): {last_error}")
