"""What the run files record about a conversation, read back into structures the pages show.

A run keeps conversations in three places, each written by ``training/`` as text, never changed here:

- ``training_metrics.json``: each epoch's ``sample_conversations``, rendered by
  ``training.metrics.render_conversation`` (an ``objective:`` line, an ``outcome:`` line, one indented ``role: text``
  line per message, a message's own newlines continuing it, each user message followed by a ``  [reward] ...``
  line of its reward terms and each agent answer by one ``  [tool] ...`` line per tool it called, then
  ``!! HALLUCINATION EXPOSED (kind): reason`` lines);
- ``findings.jsonl`` (``training.findings.findings_from``): one record per exposed hallucination, with the whole
  conversation as ``role: text`` strings and ``trigger_turn``, the user turn (1-based) whose answer made the claim,
  with ``tool_calls`` and ``reward_terms`` per user turn (runs before session 17 have neither);
- ``evaluation.json`` / ``final_evaluation.json`` (``training.evaluation.summarize``): ``sample_conversations`` per
  model, lists of ``role: text`` strings.

The verifier's reason for a finding states the agent's claim and what the database holds (its formats:
``environment.verifier``); `claim_and_truth` splits it for the viewer's "claim / database" columns.
"""

from __future__ import annotations

import re
from typing import Any

ROLES = ("user", "agent")  # the roles of ``environment.conversation.Message``
# ``training.metrics``' detail lines (not imported: that module loads torch; a round-trip test checks they agree)
TOOL_LINE, REWARD_LINE = "  [tool] ", "  [reward] "

_HALLUCINATION_LINE = re.compile(r"^  !! HALLUCINATION EXPOSED \((?P<kind>[^)]*)\): (?P<reason>.*)$")
_OUTCOME_LINE = re.compile(r"^outcome: (?P<verdict>[^|]*?) \| reward (?P<reward>\S+) \| verifier (?P<verifier>\S+)$")


def message(line: str) -> dict[str, str]:
    """``"agent: Booked!"`` as ``{"role": "agent", "text": "Booked!"}`` (role ``""`` when no known role leads)."""
    role, sep, text = line.partition(": ")
    if sep and role in ROLES:
        return {"role": role, "text": text}
    return {"role": "", "text": line}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def reward_terms(text: str) -> dict[str, float]:
    """``training.metrics.reward_terms_text`` read back: ``"length +0.050, progress +0.150"`` as a dict."""
    terms = {}
    for item in text.split(", "):
        name, _, value = item.rpartition(" ")
        number = _number(value)
        if name and number is not None:
            terms[name] = number
    return terms


def with_turn_details(turns: list[dict[str, Any]], tool_calls: Any, terms: Any) -> list[dict[str, Any]]:
    """``turns`` of a findings record, each user message given its reward terms (``reward_terms``, per user turn)
    and each agent answer the tools it called (``tool_calls``, per user turn); records without them stay as
    they are."""
    tool_calls = tool_calls if isinstance(tool_calls, list) else []
    terms = terms if isinstance(terms, list) else []
    users = 0
    for turn in turns:
        if turn["role"] == "user":
            users += 1
            if users <= len(terms) and isinstance(terms[users - 1], dict):
                turn["reward_terms"] = {k: v for k, v in terms[users - 1].items() if v}
        elif turn["role"] == "agent" and 0 < users <= len(tool_calls) and isinstance(tool_calls[users - 1], list):
            turn["tool_calls"] = [str(call) for call in tool_calls[users - 1]]
    return turns


def parse_rendered_conversation(text: str) -> dict[str, Any]:
    """A sample conversation rendered by ``training.metrics.render_conversation``, as objective, outcome, turns and
    the exposed hallucinations; lines in no known shape are kept as continuation of the message before."""
    result: dict[str, Any] = {"objective": "", "outcome": None, "turns": [], "hallucinations": []}
    for line in text.split("\n"):
        exposed = _HALLUCINATION_LINE.match(line)
        outcome = _OUTCOME_LINE.match(line)
        if exposed:
            result["hallucinations"].append({"kind": exposed["kind"], "reason": exposed["reason"]})
        elif line.startswith("objective: ") and not result["turns"]:
            result["objective"] = line.removeprefix("objective: ")
        elif outcome and not result["turns"]:
            result["outcome"] = {"success": outcome["verdict"] == "success", "verdict": outcome["verdict"],
                                 "reward": _number(outcome["reward"]), "verifier": _number(outcome["verifier"])}
        elif line.startswith(TOOL_LINE) and result["turns"]:
            result["turns"][-1].setdefault("tool_calls", []).append(line.removeprefix(TOOL_LINE))
        elif line.startswith(REWARD_LINE) and result["turns"]:
            result["turns"][-1]["reward_terms"] = reward_terms(line.removeprefix(REWARD_LINE))
        elif line.startswith("  ") and message(line[2:])["role"]:
            result["turns"].append(message(line[2:]))
        elif result["turns"]:  # a message's own newline (the agent's flight lists)
            result["turns"][-1]["text"] += "\n" + line
    return result


def claim_turn_index(turns: list[dict[str, str]], trigger_turn: int | None) -> int | None:
    """Index in ``turns`` of the agent message that made a finding's claim: the first agent message after user turn
    ``trigger_turn`` (0: the greeting), as ``environment.conversation`` counts it; None when there is none."""
    if trigger_turn is None:
        return None
    users = 0
    for index, turn in enumerate(turns):
        if turn["role"] == "user":
            users += 1
        elif turn["role"] == "agent" and users >= trigger_turn:
            return index
    return None


# The verifier's reasons (``environment.verifier``), each split into the agent's claim and the database's truth.
_REASONS: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"^no booking with confirmation code (?P<code>\S+) exists$"),
     "a booking with confirmation code {code}", "no booking row with confirmation code {code}"),
    (re.compile(r"^a (?P<what>.+) is claimed but the episode made no booking$"),
     "a {what}", "no booking row: the episode made no booking"),
    (re.compile(r"^flight (?P<number>\S+) does not exist$"),
     "flight {number}", "no flight row {number}"),
    (re.compile(r"^flight (?P<number>\S+) on (?P<day>.+) is cancelled$"),
     "flight {number} on {day} flies", "flight {number} on {day}: status cancelled"),
    (re.compile(r"^booking (?P<code>\S+) is said to be cancelled but is (?P<status>.+)$"),
     "booking {code} is cancelled", "booking {code}: status {status}"),
    (re.compile(r"^booking (?P<code>\S+): stated (?P<stated>.+?), (?P<verb>booked|charged) (?P<truth>.+)$"),
     "{stated}", "booking {code}: {verb} {truth}"),
]


def claim_and_truth(reason: str) -> dict[str, str | None]:
    """The agent's claim and the database's truth in a verifier reason; an unknown shape keeps the whole reason
    as the truth (it is the verifier's statement of what the database holds)."""
    for pattern, claim, truth in _REASONS:
        found = pattern.match(reason)
        if found:
            return {"claim": claim.format(**found.groupdict()), "truth": truth.format(**found.groupdict())}
    return {"claim": None, "truth": reason}
