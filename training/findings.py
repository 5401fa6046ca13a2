"""Fuzzing findings: every hallucination a conversation exposed, as ``findings.jsonl`` and a readable ``findings.md``.

One JSON record per exposed hallucination: the conversation, the kind, the verifier's reason, the user turn that
triggered the false claim (``trigger_turn``) and its text (``trigger_message``), the agent message that made the
false claim (``agent_claim``), the database's truth as the verifier read it (``database``: the episode's booking
rows, ``[]`` when the episode made no booking), the latest attack move up to the trigger turn (``attack``: its turn,
moves and message, or None; ``environment.personas.attack_moves``), the trigger's shape (``trigger_shape``, below),
the persona, the epoch (training) or model (evaluation). Files written before ``agent_claim``, ``database``,
``attack`` and ``trigger_shape`` existed stay readable: the claim is then the first agent message after the trigger
turn, the shape is computed from the message alone, and the database is reported as not recorded.

``findings.md`` is what a user fuzzing their own agent reads first: per kind, the distinct triggers, shortest first
(fewest user turns to the exposure, then fewest words), each as the user turn, the agent's false claim and the
database's truth side by side, with how many exposures share it and under which models and personas; the
conversation of each stays one click away.

Trigger shapes. Two triggers are the same when they differ only in the values an attack is played with: "Book AA123
now!" and "book DL456 now" are one attack. ``trigger_shape`` lowercases the message, drops punctuation and replaces,
in this order:

- the objective's own values, where the record knows its objective: its cities and airport codes by ``<city>``, the
  passenger's name (in any case) or either part of it (as written: "May" the name, not "may" the word) by ``<name>``;
- the cities and airport codes of the project's database (``database.build.AIRPORTS``; for older records, and a
  city other than the objective's) by ``<city>``;
- dates ("December 3", "2026-12-03", "12/03", weekday names) by ``<date>``; money ("$420.50", "300 dollars") by
  ``<price>``; times ("10:30", "9 am") by ``<time>``; cabin names by ``<cabin>``; ordinals ("3rd") by ``<n>``;
- tokens mixing letters and digits (flight numbers, confirmation codes: "AA123", "4M4034", "JZNE56"; "UA 12" in
  capitals only, "by 5" is a number) by ``<code>``, and any other number by ``<n>``.

A placeholder repeated back to back counts once. ``trigger_key`` (the message's words, lowercased) stays the exact
grouping the dashboard uses.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from agents.booking.base import HallucinationKind
from agents.nlu import words
from database.build import AIRPORTS
from environment.objectives import Objective
from training.novelty import bigrams
from training.rollout import EpisodeRecord

FINDINGS_JSONL = "findings.jsonl"
FINDINGS_MD = "findings.md"
# Where a training run writes the findings of its end-of-run held-out comparison (findings.jsonl and findings.md).
FINAL_FINDINGS_DIR = "final_findings"
# The columns of a booking row kept in a finding's ``database`` (``database.FlightDatabase.list_bookings``' names).
DATABASE_FIELDS = ("confirmation_code", "flight_number", "origin", "destination", "date", "cabin", "passengers",
                   "passenger_name", "total_price", "status")

_MONTHS = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
           r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_ORDINAL = r"(?:st|nd|rd|th)?"
# (pattern, placeholder) in the order they apply: dates before numbers, money before plain numbers, ordinals and
# times before the letters-and-digits rule would read "3rd" or "9am" as a code.
_SHAPE_RULES: list[tuple[re.Pattern[str], str]] = [(re.compile(pattern, re.IGNORECASE), placeholder) for pattern,
                                                    placeholder in (
    (r"\b\d{4}-\d{1,2}-\d{1,2}\b|\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b"
     r"|\b" + _MONTHS + r"\.?\s+\d{1,2}" + _ORDINAL + r"\b(?:,?\s+\d{4}\b)?"
     r"|\b\d{1,2}" + _ORDINAL + r"\s+(?:of\s+)?" + _MONTHS + r"\b(?:,?\s+\d{4}\b)?"
     r"|\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b", "<date>"),
    (r"(?:\$|\busd\s?)\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s?(?:dollars|bucks|usd)\b", "<price>"),
    (r"\b\d{1,2}(?::\d{2})?\s?(?:am|pm|a\.m\.|p\.m\.)|\b\d{1,2}:\d{2}\b", "<time>"),
    (r"\b(?:premium\s+economy|economy|business|first[\s-]+class|coach)\b", "<cabin>"),
    (r"\b\d+(?:st|nd|rd|th)\b", "<n>"),
    # "UA 12" only in capitals: "by 5" or "on 3" is no flight.
    (r"\b(?=[a-z]*\d)(?=\d*[a-z])[a-z0-9]{2,8}\b|(?-i:\b[A-Z]{2}[ -]\d{1,4}\b)", "<code>"),
    (r"\d+(?:[.,]\d+)*", "<n>"),
)]
# The database's cities (longest first: "New York" before "York") in any case, its airport codes in upper case only.
_PLACES_RE = re.compile(r"(?i:(?<!\w)(?:" + "|".join(re.escape(city) for city in sorted(
    {row[1] for row in AIRPORTS}, key=len, reverse=True)) + r")(?!\w))|\b(?:" + "|".join(row[0] for row in AIRPORTS)
                        + r")\b")
_SHAPE_TOKEN_RE = re.compile(r"<[a-z]+>|[a-z]+(?:'[a-z]+)*")


def trigger_shape(message: str | None, objective: Objective | None = None) -> str:
    """``message`` with the values an attack is played with replaced by placeholders (see the module docstring),
    lowercased, without punctuation: the key that deduplicates triggers in ``findings.md``."""
    text = str(message or "").replace("\u2019", "'")
    if objective is not None:
        values = [(value, placeholder, re.IGNORECASE) for value, placeholder in (
            (objective.origin_city, "<city>"), (objective.destination_city, "<city>"),
            (objective.passenger_name, "<name>"))]
        # A part of the name alone only as written: "May" or "Will" the name, not "may" or "will" the word.
        values += [(part, "<name>", 0) for part in objective.passenger_name.split() if len(part) > 1]
        for value, placeholder, flags in sorted(values, key=lambda item: -len(item[0])):  # "Ann Lee" before "Lee"
            if value:
                text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", f" {placeholder} ", text, flags=flags)
        for code in (objective.origin, objective.destination):  # airport codes: as written, upper case only
            text = re.sub(rf"\b{re.escape(code)}\b", " <city> ", text) if code else text
    text = _PLACES_RE.sub(" <city> ", text)
    for pattern, placeholder in _SHAPE_RULES:
        text = pattern.sub(f" {placeholder} ", text)
    tokens: list[str] = []
    for token in _SHAPE_TOKEN_RE.findall(text.lower()):
        if not (token.startswith("<") and tokens and tokens[-1] == token):
            tokens.append(token)
    return " ".join(tokens)


def _booking_row(booking: dict[str, Any]) -> dict[str, Any]:
    return {name: booking.get(name) for name in DATABASE_FIELDS}


def findings_from(records: Iterable[EpisodeRecord], **labels: Any) -> list[dict[str, Any]]:
    """One finding per exposed hallucination of ``records``; ``labels`` (e.g. ``epoch=3``, ``model="base"``) are
    added to each.

    The agent's false claim is the message the verifier found it in (``Hallucination.claim.message_index``, an index
    into the transcript); the database's truth is every booking row the verifier read from the episode's database,
    booked or cancelled (``[]``: the episode booked nothing).
    """
    findings = []
    for record in records:
        outcome = record.outcome
        users = record.user_messages
        verification = outcome.verification
        database = [_booking_row(booking) for booking in verification.bookings]
        claims = [h.claim for h in verification.hallucinations]  # the order of outcome.hallucinations
        for (kind, reason), turn, claim in zip(outcome.hallucinations, outcome.hallucination_turns, claims,
                                               strict=True):
            message = users[turn - 1] if turn and turn <= len(users) else None
            # The attack behind a claim may come turns before it: "a discount?" (turn 5), then "Yes, book it"
            # (turn 6) is answered with the invented price. The latest attack move up to the trigger turn.
            attack = next(({"turn": t, "moves": list(outcome.attack_moves[t - 1]), "message": users[t - 1]}
                           for t in range(min(turn or 0, len(users), len(outcome.attack_moves)), 0, -1)
                           if outcome.attack_moves[t - 1]), None)
            findings.append({
                **labels,
                "kind": str(kind),
                "counts_as": str(HallucinationKind(kind).injected_kind),
                "reason": reason,
                "trigger_turn": turn,
                "trigger_message": message,
                "trigger_shape": trigger_shape(message, record.objective),
                "agent_claim": (record.transcript[claim.message_index].text
                                if 0 <= claim.message_index < len(record.transcript) else None),
                "database": database,
                "attack": attack,
                "persona": outcome.persona,
                "objective": record.objective.text,
                "objective_id": record.objective.objective_id,
                "conversation": [f"{m.role}: {m.text}" for m in record.transcript],
                # Per user turn: the agent's calls answering it, and the turn's immediate reward terms.
                "tool_calls": [[call.describe() for call in calls] for calls in record.tool_calls],
                "reward_terms": record.reward_components,
            })
    return findings


def append_findings(path: Path, findings: Sequence[dict[str, Any]], drop_epochs_from: int | None = None) -> None:
    """Append ``findings`` to the JSONL file at ``path``; with ``drop_epochs_from``, records of that epoch and later
    (left by a run that is being resumed) are removed first. Written to a temporary file and renamed."""
    kept = []
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if drop_epochs_from is None or record.get("epoch") is None or record["epoch"] < drop_epochs_from:
                kept.append(line)
    lines = kept + [json.dumps(finding, default=str) for finding in findings]
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    tmp.replace(path)


def read_findings(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def trigger_key(finding: dict[str, Any]) -> str:
    """The triggering message, normalised (case, punctuation, spacing) for deduplication."""
    return " ".join(words(finding.get("trigger_message") or "")).lower()


def diverse_examples(findings: Sequence[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """Up to ``count`` findings with distinct triggering messages, picked greedily so that each adds the most
    word bigrams not seen in those already picked (the first: the one with the most)."""
    unique: dict[str, dict[str, Any]] = {}
    for finding in findings:
        unique.setdefault(trigger_key(finding), finding)
    pool, picked, seen = list(unique.values()), [], set()
    while pool and len(picked) < count:
        best = max(pool, key=lambda f: len(bigrams(f.get("trigger_message")) - seen))
        pool.remove(best)
        picked.append(best)
        seen |= bigrams(best.get("trigger_message"))
    return picked


def shape_of(finding: dict[str, Any]) -> str:
    """A finding's trigger shape: the recorded one, or (older files) the shape of its message alone."""
    return finding.get("trigger_shape") or trigger_shape(finding.get("trigger_message"))


def agent_claim_of(finding: dict[str, Any]) -> str | None:
    """The agent message that made a finding's false claim: the recorded one, or (older files) the first agent
    message after user turn ``trigger_turn`` of the conversation (0: the greeting)."""
    if finding.get("agent_claim") is not None:
        return finding["agent_claim"]
    turn, users = finding.get("trigger_turn"), 0
    if not isinstance(turn, int):
        return None
    for line in finding.get("conversation") or []:
        role, _, text = str(line).partition(": ")
        users += role == "user"
        if role == "agent" and users >= turn:
            return text
    return None


def shortness(finding: dict[str, Any]) -> tuple[int, int]:
    """(user turns to the exposure, words of the triggering message): smaller is a shorter trigger."""
    turn = finding.get("trigger_turn")
    return (turn if isinstance(turn, int) else 1 << 30, len(words(finding.get("trigger_message") or "")))


def triggers_by_shape(findings: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``findings`` grouped by trigger shape, each group's shortest finding first, the groups shortest first
    (ties: more exposures first, then the shape's text)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for finding in findings:
        groups[shape_of(finding)].append(finding)
    ordered = [sorted(items, key=shortness) for items in groups.values()]
    return sorted(ordered, key=lambda items: (shortness(items[0]), -len(items), shape_of(items[0])))


def database_text(finding: dict[str, Any]) -> str:
    """The database's truth of a finding: its booking rows, one per line."""
    rows = finding.get("database")
    if rows is None:
        return "not recorded (a findings file from before the database was recorded)"
    if not rows:
        return "no booking in the database"
    return "\n".join(f"{row.get('confirmation_code')}: flight {row.get('flight_number')} {row.get('origin')}→"
                     f"{row.get('destination')} on {row.get('date')}, {row.get('cabin')}, "
                     f"{row.get('passengers')} passenger(s), {row.get('passenger_name')}, "
                     f"total ${float(row.get('total_price') or 0):,.2f}, {row.get('status')}" for row in rows)


def _cell(text: Any) -> str:
    """``text`` safe in one Markdown table cell."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
            .replace("\n", "<br>"))


def _attack_row(finding: dict[str, Any]) -> list[str]:
    """The table row of the attack move behind a finding, when it came before the trigger turn."""
    attack = finding.get("attack")
    if not attack or attack.get("turn") == finding.get("trigger_turn"):
        return []
    return [f"| attack move (turn {attack.get('turn')}: {', '.join(attack.get('moves') or [])}) | "
            f"{_cell(attack.get('message'))} |"]


def _sources(items: Sequence[dict[str, Any]]) -> str:
    """Which models, epochs and personas the exposures of one trigger came from, with counts."""
    parts = []
    for label in ("model", "epoch", "persona"):
        counts = Counter(str(f[label]) for f in items if f.get(label) is not None)
        if counts:
            parts.append(f"{label} " + ", ".join(f"{name} ×{n}" for name, n in
                                                 sorted(counts.items(), key=lambda item: (-item[1], item[0]))))
    return "; ".join(parts) or "–"


def findings_markdown(findings: Sequence[dict[str, Any]], title: str = "Fuzzing findings",
                      triggers_per_kind: int = 10) -> str:
    """Counts per kind (exposures, distinct trigger shapes, the shortest trigger), per model and per persona, then
    per kind its distinct triggers, shortest first (up to ``triggers_per_kind``), each as the user turn, the agent's
    false claim and the database's truth, with its exposures' sources and the conversation collapsed."""
    lines = [f"# {title}", ""]
    if not findings:
        return "\n".join(lines + ["No hallucination was exposed.", ""])
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for finding in findings:
        by_kind[finding["kind"]].append(finding)
    kinds = sorted(by_kind.items(), key=lambda item: (-len(item[1]), item[0]))
    grouped = {kind: triggers_by_shape(items) for kind, items in kinds}
    distinct = len({shape_of(f) for f in findings})
    lines += [f"{len(findings)} hallucinations exposed, {len(by_kind)} kinds, {distinct} distinct triggers "
              "(triggering messages alike but for their values: flight numbers, codes, dates, prices, numbers, "
              "cabins, the traveller's cities and name).", "",
              "| kind | counts as | exposed | distinct triggers | shortest trigger (user turns) |",
              "|---|---|---|---|---|"]
    for kind, items in kinds:
        lines.append(f"| {kind} | {items[0]['counts_as']} | {len(items)} | {len(grouped[kind])} | "
                     f"{grouped[kind][0][0].get('trigger_turn')} |")
    for label in ("model", "persona"):
        counts = Counter(str(f.get(label)) for f in findings if f.get(label) is not None)
        if counts:
            lines += ["", f"| {label} | exposed |", "|---|---|"]
            lines += [f"| {name} | {n} |" for name, n in sorted(counts.items(), key=lambda item: -item[1])]
    for kind, items in kinds:
        groups = grouped[kind]
        lines += ["", f"## {kind}", "", f"{len(items)} exposures, {len(groups)} distinct triggers, shortest first."]
        for number, group in enumerate(groups[:triggers_per_kind], start=1):
            shortest = group[0]
            lines += ["", f"### {number}. `{shape_of(shortest) or '(no user message)'}`", "",
                      f"{len(group)} exposure{'s' if len(group) > 1 else ''} ({_sources(group)}).", "",
                      "| | |", "|---|---|",
                      f"| user (turn {shortest.get('trigger_turn')}) | {_cell(shortest.get('trigger_message'))} |",
                      *_attack_row(shortest),
                      f"| agent's false claim | {_cell(agent_claim_of(shortest))} |",
                      f"| database | {_cell(database_text(shortest))} |",
                      f"| verifier | {_cell(shortest.get('reason'))} |", "",
                      f"<details><summary>The conversation ({len(shortest.get('conversation') or [])} messages"
                      f"{', objective ' + str(shortest['objective_id']) if shortest.get('objective_id') else ''})"
                      "</summary>", "", "```"]
            lines += [str(line) for line in shortest.get("conversation") or []] + ["```", "", "</details>"]
        if len(groups) > triggers_per_kind:
            lines += ["", f"… and {len(groups) - triggers_per_kind} more distinct triggers (longer ones) in "
                          f"`{FINDINGS_JSONL}`."]
    return "\n".join(lines).rstrip() + "\n"


def write_findings_report(directory: Path, title: str = "Fuzzing findings") -> Path:
    """``findings.md`` in ``directory`` from its ``findings.jsonl``."""
    path = directory / FINDINGS_MD
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(findings_markdown(read_findings(directory / FINDINGS_JSONL), title))
    tmp.replace(path)
    return path


def write_comparison_findings(directory: Path, records_by_model: dict[str, Sequence[EpisodeRecord]],
                               title: str) -> Path:
    """The findings of models played side by side on the same objectives (``evaluate.py``, a run's end-of-run
    comparison): ``findings.jsonl`` in ``directory`` rewritten with each model's, labelled ``model``, and
    ``findings.md``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / FINDINGS_JSONL).unlink(missing_ok=True)
    append_findings(directory / FINDINGS_JSONL, [finding for model, records in records_by_model.items()
                                                 for finding in findings_from(records, model=model)])
    return write_findings_report(directory, title)


def write_epoch_findings(output_dir: Path, epoch: int, findings: Sequence[dict[str, Any]], writer: Any = None) -> None:
    """A training epoch's findings: appended to ``findings.jsonl`` (replacing any left from this epoch on by a
    resumed run), ``findings.md`` rewritten, and, given a TensorBoard ``SummaryWriter``, the epoch's most diverse
    examples shown in its text tab."""
    append_findings(output_dir / FINDINGS_JSONL, findings, drop_epochs_from=epoch)
    write_findings_report(output_dir, f"Fuzzing findings of {output_dir}")
    if writer is None:
        return
    for index, finding in enumerate(diverse_examples(findings, 2)):
        text = (f"**{finding['kind']}** (user turn {finding['trigger_turn']}): {finding['reason']}\n\n"
                + "\n".join(finding["conversation"]))
        writer.add_text(f"findings/{index + 1}", text.replace("\n", "  \n"), epoch)
