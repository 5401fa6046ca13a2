"""Environment throughput: episodes per second and per-step latency with a scripted user and the rule agent.

Both tool transports are measured ("inprocess" and "mcp"); the database is built in a temp dir. One JSON line:

    python benchmarks/bench_env.py [--episodes 20]

Each episode is a scripted happy path (search, pick, name, confirm, goodbye) over a feasible objective, so the
numbers cover the full turn: reward terms, the agent's NLU and tool calls, and the verifier at the end.
MCP server start-up is timed separately (``mcp_startup_s``) and excluded from the episode rates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from agents.booking import BookingAgentConfig
from agents.nlu import month_day
from database.build import build_database
from environment.config import EnvironmentConfig
from environment.conversation import BookingConversationEnvironment
from environment.objectives import Objective, generate_objectives


def happy_path(objective: Objective) -> list[str]:
    """The user messages of a cooperative traveller who books the first option."""
    day = date.fromisoformat(objective.date)
    return [
        f"Hi, I'd like to fly from {objective.origin_city} to {objective.destination_city} on "
        f"{month_day(day)}.",
        f"{objective.cabin.capitalize()} class please, for {objective.passengers} passengers.",
        "The first one please.",
        f"My name is {objective.passenger_name}.",
        "Yes, please book it.",
        "Thank you, goodbye!",
    ]


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def _run(transport: str, template: Path, workdir: Path, objectives: list[Objective],
               episodes: int) -> dict[str, Any]:
    config = EnvironmentConfig(db_path=str(template), workdir=str(workdir / transport), max_conversation_length=10,
                               agent=BookingAgentConfig(transport=transport))
    env = BookingConversationEnvironment(config)
    start = time.perf_counter()
    await env.tools.start()  # the MCP subprocess starts here; in process this is a no-op
    startup = time.perf_counter() - start
    step_seconds: list[float] = []
    successes = 0
    start = time.perf_counter()
    for index in range(episodes):
        objective = objectives[index % len(objectives)]
        env.reset(objective=objective, seed=index)
        for message in happy_path(objective):
            step_start = time.perf_counter()
            step = await env.step(message)
            step_seconds.append(time.perf_counter() - step_start)
            if step.done or step.truncated:
                successes += bool(step.info["success"])
                break
    elapsed = time.perf_counter() - start
    await env.aclose()
    ms = [1000 * s for s in step_seconds]
    result = {
        f"{transport}_episodes_per_s": round(episodes / elapsed, 2),
        f"{transport}_step_ms_mean": round(statistics.fmean(ms), 3),
        f"{transport}_step_ms_p50": round(statistics.median(ms), 3),
        f"{transport}_step_ms_p95": round(_percentile(ms, 95), 3),
        f"{transport}_steps_per_episode": round(len(ms) / episodes, 2),
        f"{transport}_success_rate": round(successes / episodes, 3),
    }
    if transport == "mcp":
        result["mcp_startup_s"] = round(startup, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-env-"))
    template = build_database(workdir / "flights.db", seed=0)
    pool = [Objective.from_dict(record) for record in generate_objectives(template, 4 * args.episodes, seed=args.seed)]
    objectives = [o for o in pool if o.feasible][: args.episodes]
    result: dict[str, Any] = {"benchmark": "bench_env", "episodes": args.episodes, "agent": "rule"}
    for transport in ("inprocess", "mcp"):
        result.update(asyncio.run(_run(transport, template, workdir, objectives, args.episodes)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
