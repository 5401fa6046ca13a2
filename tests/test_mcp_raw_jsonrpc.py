"""Raw JSON-RPC lines on the real MCP server's stdin: every malformed request is answered, and the server lives on.

The SDK's stdio transport drops a line that is not a valid JSON-RPC message without a reply; the sender of such a
request would wait forever. These tests talk to a real ``mcp-server/database_server.py`` process line by line.
"""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agents.tool_client import SERVER_SCRIPT, make_tool_client

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
TIMEOUT_S = 20.0


class RawServer:
    """A server process spoken to in raw JSON lines; a reader thread queues what it writes on stdout."""

    def __init__(self, db: Path, read_only: bool = False):
        args = [sys.executable, str(SERVER_SCRIPT), "--db", str(db)] + (["--read-only"] if read_only else [])
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stdout], daemon=True).start()

    def send(self, line: str) -> None:
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def receive(self, timeout: float = TIMEOUT_S) -> dict | None:
        try:
            return json.loads(self.lines.get(timeout=timeout))
        except queue.Empty:
            return None

    def initialize(self) -> None:
        self.send(json.dumps({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}))
        reply = self.receive(60.0)  # the first reply waits for the server's imports
        assert reply is not None and reply["id"] == "init" and "result" in reply, reply
        self.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))

    def close(self) -> tuple[int, str]:
        self.process.stdin.close()
        code = self.process.wait(timeout=TIMEOUT_S)
        return code, self.process.stderr.read().decode()


@pytest.fixture
def raw_server(db_copy: Path):
    server = RawServer(db_copy)
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


# (line sent, id the error response must carry, error code, words in the message)
MALFORMED = [
    ('{"jsonrpc":"2.0","id":1,"method":5}', 1, INVALID_REQUEST, "method must be a string"),
    ('{"jsonrpc":"2.0","id":2,"method":null}', 2, INVALID_REQUEST, "method must be a string"),
    ('{"jsonrpc":"2.0","id":"s3","method":["tools/list"]}', "s3", INVALID_REQUEST, "method must be a string"),
    ('{"jsonrpc":"2.0","id":4,"method":{"name":"ping"}}', 4, INVALID_REQUEST, "method must be a string"),
    ('{"jsonrpc":"2.0","id":5}', 5, INVALID_REQUEST, "method is missing"),
    ('{"jsonrpc":"1.0","id":6,"method":"tools/list"}', 6, INVALID_REQUEST, "jsonrpc"),
    ('{"id":7,"method":"tools/list"}', 7, INVALID_REQUEST, "jsonrpc"),
    ('{"jsonrpc":2,"id":8,"method":"tools/list"}', 8, INVALID_REQUEST, "jsonrpc"),
    ('{"jsonrpc":"2.0","id":9,"method":"tools/call","params":[]}', 9, INVALID_PARAMS, "params must be an object"),
    ('{"jsonrpc":"2.0","id":10,"method":"tools/list","params":5}', 10, INVALID_PARAMS, "params must be an object"),
    ('{"jsonrpc":"2.0","id":11,"method":"ping","params":"x"}', 11, INVALID_PARAMS, "params must be an object"),
    ('{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"search_flights","arguments":[]}}', 12,
     INVALID_PARAMS, "invalid arguments for search_flights: expected an object, got []"),
    ('{"jsonrpc":"2.0","id":13,"method":"tools/call","params":{"name":"list_airports","arguments":0}}', 13,
     INVALID_PARAMS, "invalid arguments for list_airports: expected an object, got 0"),
    # An id that is not a string or an integer cannot be echoed: the answer carries null.
    ('{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}', None, INVALID_REQUEST, "id must be"),
    ('{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}', None, INVALID_REQUEST, "id must be"),
    ('{"jsonrpc":"2.0","id":true,"method":"tools/list"}', None, INVALID_REQUEST, "id must be"),
    ('{"jsonrpc":"2.0","id":null,"method":"tools/list"}', None, INVALID_REQUEST, "id must be"),
    ('{"jsonrpc":"2.0","id":[14],"method":5}', None, INVALID_REQUEST, "method must be a string"),
    # Not JSON, or not an object: no id to find.
    ("not json", None, PARSE_ERROR, "Parse error"),
    ('{"jsonrpc":"2.0","id":15,"method":"tools/list"', None, PARSE_ERROR, "Parse error"),
    ("[" * 100_000, None, PARSE_ERROR, "Parse error"),
    ("[]", None, INVALID_REQUEST, "expected a JSON object"),
    ('[{"jsonrpc":"2.0","id":16,"method":"ping"}]', None, INVALID_REQUEST, "expected a JSON object"),
    ("42", None, INVALID_REQUEST, "expected a JSON object"),
    ('"tools/list"', None, INVALID_REQUEST, "expected a JSON object"),
    # Well-formed messages the SDK already answers: unchanged.
    ('{"jsonrpc":"2.0","id":17,"method":"no/such/method"}', 17, METHOD_NOT_FOUND, "Method not found"),
    ('{"jsonrpc":"2.0","id":18,"method":"tools/call","params":{"name":5}}', 18, INVALID_PARAMS, ""),
]


def test_each_malformed_request_gets_an_error_response_and_the_server_keeps_serving(raw_server: RawServer) -> None:
    raw_server.initialize()
    for line, request_id, code, words in MALFORMED:
        raw_server.send(line)
        reply = raw_server.receive()
        assert reply is not None, f"no reply to {line[:80]!r}"
        assert reply.get("jsonrpc") == "2.0" and reply["id"] == request_id and "result" not in reply, (line, reply)
        assert reply["error"]["code"] == code and words in reply["error"]["message"], (line[:80], reply)
        assert "\n" not in reply["error"]["message"]
    # A malformed *response* answers nothing of ours and gets no reply; a blank line neither.
    for line in ('{"jsonrpc":"2.0","id":90,"result":5}', '{"jsonrpc":"2.0","id":91,"error":{"code":"x"}}', "  "):
        raw_server.send(line)
    raw_server.send(json.dumps({"jsonrpc": "2.0", "id": 99, "method": "tools/call",
                                "params": {"name": "list_airports", "arguments": {}}}))
    reply = raw_server.receive()
    assert reply is not None and reply["id"] == 99, reply  # the first reply after them is the valid call's
    assert reply["result"]["isError"] is False and reply["result"]["structuredContent"]["count"] >= 25
    code, stderr = raw_server.close()
    assert code == 0 and "Traceback" not in stderr, stderr[-2000:]


@pytest.mark.parametrize("read_only", [False, True])
def test_non_object_arguments_give_one_error_line_on_every_transport(db_copy: Path, read_only: bool) -> None:
    calls = [(name, arguments) for name in ("search_flights", "list_airports", "book_flight", "no_such_tool")
             for arguments in ([], "", 0, [1], "{}", True)]

    async def results(transport: str) -> list[str | None]:
        client = make_tool_client(transport, db_copy, read_only=read_only)
        outcomes = [await client.call(name, arguments) for name, arguments in calls]
        await client.close()
        assert not any(outcome.ok for outcome in outcomes)
        return [outcome.error for outcome in outcomes]

    in_process, via_mcp = asyncio.run(results("inprocess")), asyncio.run(results("mcp"))
    assert via_mcp == in_process
    assert in_process[0] == "invalid arguments for search_flights: expected an object, got []"
    assert in_process[-1] == "Unknown tool: no_such_tool"
    assert in_process[12] == ("Unknown tool: book_flight" if read_only else
                              "invalid arguments for book_flight: expected an object, got []")

    # A raw tools/call to the server with the same arguments is refused with that same line.
    server = RawServer(db_copy, read_only=read_only)
    try:
        server.initialize()
        for number, ((name, arguments), expected) in enumerate(zip(calls, in_process, strict=True)):
            if expected.startswith("Unknown tool"):
                continue  # an unknown tool is the SDK's own answer over raw JSON-RPC
            server.send(json.dumps({"jsonrpc": "2.0", "id": number, "method": "tools/call",
                                    "params": {"name": name, "arguments": arguments}}))
            reply = server.receive()
            assert reply is not None and reply["id"] == number, reply
            assert reply["error"] == {"code": INVALID_PARAMS, "message": expected}
        assert server.close()[0] == 0
    finally:
        if server.process.poll() is None:
            server.process.kill()
