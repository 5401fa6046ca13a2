"""Probe one step of the booking flow in isolation: does the auto-user answer the agent's name question ("May I
have the lead passenger's full name?") with its objective's name, its date question with its objective's date, or,
in its opening message, say what the agent would otherwise assume wrongly (a party above one, a cabin other than
economy), or, after the agent searched for one passenger when the objective has more, correct the party size?

    python training/probe_name_answer.py --model base|PATH --config CONFIG [--question name|date|opening|correction]
        [--objectives 8] [--samples 4] [--set SECTION.KEY=VALUE ...]

For each held-out feasible objective a scripted traveller gives the route and date and picks the first flight (name),
or gives the route only (date), so the agent's last message asks for that detail; for ``opening`` nothing is said
yet, and only objectives with a party above one or a cabin other than economy are probed; for ``correction`` the
traveller gives the route and date only, on objectives with a party above one, and the states where the agent then
searched for one passenger are probed (``environment.demonstrators.turn_situation``: "correction"). The policy then
samples ``--samples`` replies to that exact state. Prints one JSON line: how many replies gave the objective's name,
date, every such detail, or its party size (docs/experiments.md, rounds 3, 6, 12 and 13).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date
from pathlib import Path

from agents.nlu import month_day
from environment.demonstrators import unusual_details


def scripted_prefix(objective, question: str = "name") -> list[str]:
    """The traveller's messages that bring the agent to ask for ``question`` ("name", "date"; "opening": none)."""
    if question == "opening":
        return []
    if question == "correction":
        return [f"Hi, I'd like to fly from {objective.origin_city} to {objective.destination_city} on "
                f"{month_day(date.fromisoformat(objective.date))}."]
    if question == "date":
        return [f"Hi, I'd like to fly from {objective.origin_city} to {objective.destination_city}."]
    day = date.fromisoformat(objective.date)
    return [f"Hi, I'd like to fly from {objective.origin_city} to {objective.destination_city} on "
            f"{month_day(day)}, in {objective.cabin}, for {objective.passengers} passenger(s).",
            "The first one please."]


async def question_states(env, objectives, question: str = "name") -> list[tuple[object, str]]:
    """(objective, state string) for every objective whose scripted prefix ends at the agent asking ``question``."""
    from agents.nlu import asked_details
    from environment.demonstrators import turn_situation

    detail = {"name": "passenger_name", "opening": "origin"}.get(question, question)
    states = []
    for objective in objectives:
        env.reset(objective=objective, seed=1)
        for message in scripted_prefix(objective, question):
            await env.step(message)
        if question == "correction":
            reached = turn_situation(env.state, env.today) == "correction"
        else:  # agent_opens off: no agent message yet, no question
            reached = bool(env.state.history) and detail in asked_details(env.state.history[-1].text)
        if reached:
            states.append((objective, env.format_state()))
    return states


def gives_the_answer(objective, reply: str, question: str, today: date) -> bool:
    """The reply states the objective's name (``date``: its travel date; ``opening``: every unusual detail;
    ``correction``: its party size)."""
    from agents.nlu import parse_date, parse_message

    if question == "correction":
        return parse_message(reply, {}, today).passengers == objective.passengers
    if question == "opening":
        said = parse_message(reply, {}, today).slots()
        return all(said.get(key) == value for key, value in unusual_details(objective).items())
    if question == "date":
        return parse_date(reply, today) == objective.date
    return objective.passenger_name.lower() in reply.lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base", help="'base' or a checkpoint / final_model directory")
    parser.add_argument("--config", default="configs/ppo_training_config.yaml")
    parser.add_argument("--question", choices=("name", "date", "opening", "correction"), default="name",
                        help="the agent question to probe (opening: the agent's first message; correction: "
                             "an offer for one passenger when the objective has more)")
    parser.add_argument("--objectives", type=int, default=8, help="held-out feasible objectives to probe")
    parser.add_argument("--samples", type=int, default=4, help="sampled replies per objective")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args(argv)
    if args.objectives < 1 or args.samples < 1:
        parser.error("--objectives and --samples must be >= 1")
    from training.config import ConfigError, load_config

    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    if args.model != "base" and not Path(args.model).exists():
        print(f"error: no such file or directory {args.model}", file=sys.stderr)
        return 2
    from environment.conversation import BookingConversationEnvironment
    from environment.objectives import load_objectives
    from training.evaluation import load_auto_user

    agent = load_auto_user(args.model, config)
    _, held_out = load_objectives(config.environment, config.evaluation.eval_objectives_file)
    wanted = {"opening": unusual_details, "correction": lambda o: o.passengers > 1}.get(args.question, bool)
    objectives = [o for o in held_out if o.feasible and wanted(o)]
    objectives = objectives[: args.objectives]
    env = BookingConversationEnvironment(config.environment, worker_id=200, tokenizer=agent.tokenizer,
                                         max_state_tokens=config.model.max_query_length)
    loop = asyncio.new_event_loop()
    try:
        states = loop.run_until_complete(question_states(env, objectives, args.question))
        loop.run_until_complete(env.aclose())
    finally:
        loop.close()
    answered, replies, examples = 0, 0, []
    for index, (objective, state) in enumerate(states):
        texts = agent.generate([state] * args.samples, seed=config.seed + index)[2]
        answered += sum(gives_the_answer(objective, text, args.question, env.today) for text in texts)
        replies += len(texts)
        examples.append(texts[0])
    print(json.dumps({"probe": f"{args.question}_answer", "model": agent.config.model_name,
                      "state_template": config.environment.state_template, "objectives": len(objectives),
                      "states": len(states), "replies": replies, "answered": answered,
                      "rate": answered / replies if replies else 0.0, "examples": examples[:3]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
