"""Tool calls per second (search, book) in process and over MCP stdio, and episode reset time. One JSON line.

    python benchmarks/bench_db.py [--calls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from agents.tool_client import make_tool_client
from database import EpisodeDatabase
from database.build import build_database


async def _rates(transport: str, db_path: Path, calls: int) -> dict[str, float]:
    client = make_tool_client(transport, db_path)
    await client.start()
    search_args = {"origin": "JFK", "destination": "LAX", "date": "2026-12-10"}
    start = time.perf_counter()
    for _ in range(calls):
        result = await client.call("search_flights", search_args)
    search_rate = calls / (time.perf_counter() - start)
    flight = result.data["flights"][0]["flight_number"]
    start = time.perf_counter()
    for _ in range(calls):
        booked = await client.call("book_flight", {"flight_number": flight, "date": "2026-12-10", "cabin": "economy",
                                                   "passenger_name": "Ann Lee"})
        if not booked.ok:  # sold out: cancel to free the seats and keep booking
            raise RuntimeError(booked.error)
        await client.call("cancel_booking", {"confirmation_code": booked.data["confirmation_code"]})
    book_rate = 2 * calls / (time.perf_counter() - start)
    await client.close()
    return {f"{transport}_search_per_s": round(search_rate, 1), f"{transport}_book_cancel_per_s": round(book_rate, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-db-"))
    template = build_database(workdir / "flights.db", seed=0)
    result: dict[str, float | int] = {"benchmark": "bench_db", "calls": args.calls}
    for transport in ("inprocess", "mcp"):
        episode = EpisodeDatabase(template, workdir / transport)
        result.update(asyncio.run(_rates(transport, episode.path, args.calls)))
        episode.close()
    episode = EpisodeDatabase(template, workdir / "reset")
    resets = [episode.reset() for _ in range(50)]
    result["reset_ms_median"] = round(1000 * statistics.median(resets), 2)
    result["reset_ms_max"] = round(1000 * max(resets), 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
