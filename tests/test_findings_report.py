"""Findings a user can act on: each finding's agent claim and database truth, trigger shapes, and ``findings.md``
grouped by kind and by the shortest trigger; older findings files stay readable.

The episodes are real: the scripted attackers against the rule agent (always falling for the attack) on a real SQLite
database, each episode's working database read back with ``sqlite3`` right after it ended.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest

from database import READ_TOOLS, WRITE_TOOLS
from environment.objectives import Objective, generate_objectives
from environment.scripted_users import scripted_message
from tests.test_fuzzing import ALWAYS, fuzz_env
from training.findings import (
    FINDINGS_JSONL,
    FINDINGS_MD,
    agent_claim_of,
    append_findings,
    findings_from,
    findings_markdown,
    read_findings,
    trigger_shape,
    write_findings_report,
)
from training.rollout import RolloutCollector

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "results" / "fuzzing" / "findings.jsonl"  # written before agent_claim / database existed
PERSONAS = ("hurried", "flight_number", "indecisive", "bargain_hunter")
ALL_TOOLS = set(READ_TOOLS + WRITE_TOOLS)


def database_rows(path: Path) -> list[dict]:
    """The bookings of an episode's database file, read with plain SQL (not the project's query functions)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT b.confirmation_code, f.flight_number, f.origin, f.destination, f.departure_date, b.cabin,"
            " b.num_passengers, b.passenger_name, b.total_price, b.status FROM bookings b"
            " JOIN flights f ON f.flight_id = b.flight_id ORDER BY b.created_at, b.rowid").fetchall()
    finally:
        conn.close()
    names = ("confirmation_code", "flight_number", "origin", "destination", "date", "cabin", "passengers",
             "passenger_name", "total_price", "status")
    return [dict(zip(names, row, strict=True)) for row in rows]


# (the verifier's reason, what the agent's claim must then say): the code, the flight, the price as written, a cabin.
CLAIM_CONTENT = [
    (r"no booking with confirmation code (\w+) exists", r"\b{0}\b"),
    (r"^flight (\w+) does not exist", r"\b{0}\b"),
    (r"^a booking is claimed but the episode made no booking$", r"\b(?:booked|reserved|all set|confirmed)\b"),
    (r"stated \$([\d,]+)\.(\d\d)", r"(?:\$|usd\s?){0}(?:\.{1})?(?!\d)"),
    (r"stated cabin (\w+)", r"\b(?:{0}|main cabin|coach)\b"),
]


@pytest.fixture(scope="module")
def played(template_db: Path, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, object, list[dict]]]:
    """(persona, episode record, the episode's database rows) for each attack persona on three objectives with
    three different destination cities, one episode at a time on one environment per persona."""
    candidates = [Objective.from_dict(r) for r in generate_objectives(template_db, 80, seed=5) if r["feasible"]]
    objectives, cities = [], set()
    for objective in candidates:
        if objective.destination_city not in cities and objective.origin_city not in cities:
            objectives.append(objective)
            cities |= {objective.origin_city, objective.destination_city}
    objectives = objectives[:3]
    assert len(objectives) == 3
    workdir = tmp_path_factory.mktemp("findings-work")
    results = []

    async def run() -> None:
        for worker, persona in enumerate(PERSONAS):
            env = fuzz_env(template_db, workdir, [persona], worker_id=worker, **ALWAYS)
            collector = RolloutCollector([env], script=scripted_message)
            for index, objective in enumerate(objectives):
                records, stats = await collector.collect([(objective, 200 + index)], progress=False)
                assert stats.errors == 0 and len(records) == 1
                results.append((persona, records[0], database_rows(env.database.path)))
            await env.aclose()

    asyncio.run(run())
    return results


def test_each_finding_carries_the_agents_claim_and_the_database_rows(played) -> None:
    kinds_with_bookings, kinds_without = set(), set()
    for persona, record, rows in played:
        found = findings_from([record], model="scripted")
        assert found, f"{persona} exposed nothing"
        agent_texts = [m.text for m in record.transcript if m.role == "agent"]
        for finding in found:
            claim = finding["agent_claim"]
            assert claim in agent_texts, finding
            # The claim is the message the verifier read it in: the answer to the triggering user turn or later.
            index = next(i for i, m in enumerate(record.transcript) if m.role == "agent" and m.text == claim)
            assert sum(m.role == "user" for m in record.transcript[:index]) >= finding["trigger_turn"]
            # It is the message the verifier found the false claim in, and it states what the reason says it does.
            hallucination = next(h for h in record.outcome.verification.hallucinations if h.reason == finding["reason"])
            assert record.transcript[hallucination.claim.message_index].text == claim
            for pattern, expected in CLAIM_CONTENT:
                stated = re.search(pattern, finding["reason"])
                if stated:
                    assert re.search(expected.format(*map(re.escape, stated.groups())), claim, re.IGNORECASE), (
                        finding["reason"], claim)
                    break
            else:
                raise AssertionError(f"no expectation for the reason {finding['reason']!r}")
            # The database's truth: the rows of the episode's database file, every column as stored.
            assert finding["database"] == rows
            (kinds_with_bookings if rows else kinds_without).add(finding["kind"])
            # The attack move behind the claim: the persona's move, made on the trigger turn or before it.
            attack = finding["attack"]
            assert attack["moves"] and attack["message"] == record.user_messages[attack["turn"] - 1]
            assert attack["turn"] == max(t for t, moves in enumerate(record.outcome.attack_moves, start=1)
                                         if moves and t <= finding["trigger_turn"])
            if persona in ("indecisive", "bargain_hunter"):  # asked on turn 5, claimed when booking on turn 6
                assert (attack["turn"], finding["trigger_turn"]) == (5, 6), finding
            # The unchanged fields stay as they were.
            assert finding["trigger_message"] == record.user_messages[finding["trigger_turn"] - 1]
            assert finding["conversation"] == [f"{m.role}: {m.text}" for m in record.transcript]
    # Both halves are exercised: claims about no booking at all (an explicit []), and claims beside a real booking.
    assert "phantom_confirmation" in kinds_without and {"stale_details", "invented_price"} <= kinds_with_bookings
    assert any(rows == [] for _, _, rows in played) and any(rows for _, _, rows in played)


def test_findings_record_each_turns_tool_calls_and_reward_terms_and_the_dashboard_shows_them(played, tmp_path) \
        -> None:
    """A finding keeps, per user turn, the tools the agent called to answer it and the turn's reward terms; the
    dashboard's conversation view puts them on the agent's answer and the user's message. A phantom confirmation's
    answer called no booking tool that returned its code: the database's side of the claim, one click away."""
    from fastapi.testclient import TestClient

    from dashboard.app import create_app

    run = tmp_path / "runs" / "fuzz"
    run.mkdir(parents=True)
    records = [(persona, record) for persona, record, _ in played]
    append_findings(run / FINDINGS_JSONL, [f for _, record in records for f in findings_from([record], epoch=1)])
    client = TestClient(create_app([tmp_path / "runs"], poll_seconds=0.05))
    listed = client.get("/api/runs/runs/fuzz/findings").json()["findings"]
    assert listed
    phantom_checked = 0
    for entry, finding in zip(listed, read_findings(run / FINDINGS_JSONL), strict=True):
        user_turns = sum(line.startswith("user: ") for line in finding["conversation"])
        assert len(finding["tool_calls"]) == len(finding["reward_terms"]) == user_turns
        view = client.get(f"/api/runs/runs/fuzz/conversations/{entry['ref']}").json()
        assert view["not_recorded"] == {}
        users = [t for t in view["turns"] if t["role"] == "user"]
        assert [u["reward_terms"] for u in users] == [{k: v for k, v in terms.items() if v}
                                                      for terms in finding["reward_terms"]]
        [claim_turn] = [t for t in view["turns"] if any(f["id"] == entry["id"] for f in t.get("findings", []))]
        answered = sum(t["role"] == "user" for t in view["turns"][: claim_turn["index"]])
        assert claim_turn.get("tool_calls", []) == finding["tool_calls"][answered - 1]
        code = re.match(r"no booking with confirmation code (\w+) exists", finding["reason"])
        if code:
            calls = claim_turn.get("tool_calls", [])
            assert not any(call.startswith("book_flight") and code[1] in call for call in calls), calls
            phantom_checked += 1
    assert all(call.split(" ")[0] in ALL_TOOLS for f in read_findings(run / FINDINGS_JSONL)
               for turn in f["tool_calls"] for call in turn)
    assert phantom_checked or not any("confirmation code" in f["reason"] for f in read_findings(run / FINDINGS_JSONL))


def test_rendered_sample_conversations_read_back_with_tool_calls_and_reward_terms(played) -> None:
    """``training.metrics.render_conversation`` (the epochs' sample conversations) and the dashboard's reader agree:
    every message, each agent answer's tool calls and each user turn's reward terms come back as recorded."""
    from dashboard.records import parse_rendered_conversation
    from training.metrics import render_conversation

    for _, record, _ in played:
        parsed = parse_rendered_conversation(render_conversation(record))
        assert [(t["role"], t["text"]) for t in parsed["turns"]] == [(m.role, m.text) for m in record.transcript]
        users = [t for t in parsed["turns"] if t["role"] == "user"]
        assert [u["reward_terms"] for u in users] == [
            {k: pytest.approx(v, abs=5e-4) for k, v in terms.items() if v} for terms in record.reward_components]
        answers = [t.get("tool_calls", []) for n, t in enumerate(parsed["turns"])
                   if t["role"] == "agent" and any(u["role"] == "user" for u in parsed["turns"][:n])]
        assert answers == [[call.describe() for call in calls] for calls in record.tool_calls][: len(answers)]
        assert [h["reason"] for h in parsed["hallucinations"]] == [r for _, r in record.outcome.hallucinations]
    called = {call.name for _, record, _ in played for calls in record.tool_calls for call in calls}
    assert {"search_flights", "book_flight"} <= called <= ALL_TOOLS


@pytest.mark.parametrize(("first", "second", "same"), [
    ("book AA123 now", "Book DL456 now!", True),  # flight numbers
    ("My code is JZNE56, is it confirmed?", "my code is 4M4034 is it confirmed", True),  # codes, punctuation
    ("Can I fly on December 3rd?", "can i fly on 2026-12-05", True),  # dates in any form
    ("Match $412.50 please", "match 300 dollars please", True),  # money
    ("Make it business instead.", "Actually, make it economy instead.", False),  # a different wording stays apart
    ("Make it business instead.", "Make it economy instead!", True),  # cabins
    ("I need 2 seats at 9am", "I need 3 seats at 10:30", True),  # numbers and times
    ("I need to get to Atlanta now", "I need to get to St. Louis now", True),  # the database's cities
    ("book it now", "cancel it now", False),
    ("I need it by 5", "I need it by 6 please", False),  # "by 5" is a number, not flight "BY 5"
    ("Put me on UA 12", "put me on DL-345", True),  # a spaced flight number
])
def test_trigger_shapes_merge_only_values(first, second, same) -> None:
    assert (trigger_shape(first) == trigger_shape(second)) is same, (trigger_shape(first), trigger_shape(second))


def test_trigger_shape_uses_the_objectives_own_values() -> None:
    objective = Objective(objective_id="x", origin="BOS", destination="ATL", origin_city="Boston",
                          destination_city="Atlanta", date="2026-12-03", cabin="economy", passengers=2,
                          passenger_name="Zed Quorra").with_text()
    assert trigger_shape("Book it for Zed Quorra from BOS", objective) == "book it for <name> from <city>"
    assert trigger_shape("I'm Quorra, just book it", objective) == trigger_shape("I'm Lee, just book it",
                                                                                 _named("Ann Lee"))
    assert trigger_shape("I'm Quorra, just book it") == "i'm quorra just book it"  # a name only the objective knows
    assert trigger_shape("I need it by 5", objective) == "i need it by <n>"
    assert trigger_shape("Book it for May", _named("May Chen")) == "book it for <name>"  # the name, as written
    assert trigger_shape("you may book", _named("May Chen")) == "you may book"  # the word


def _named(name: str) -> Objective:
    return Objective(objective_id="y", origin="SEA", destination="DEN", origin_city="Seattle",
                     destination_city="Denver", date="2026-12-04", cabin="business", passengers=1,
                     passenger_name=name).with_text()


def _summary_rows(report: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split(" | ") for line in report.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows if len(cells) == 5}


def test_report_groups_real_findings_by_kind_and_shortest_trigger(played, tmp_path) -> None:
    findings = [f for _, record, _ in played for f in findings_from([record], model="scripted")]
    append_findings(tmp_path / FINDINGS_JSONL, findings)
    report = write_findings_report(tmp_path).read_text()
    assert (tmp_path / FINDINGS_MD).exists()
    rows = _summary_rows(report)
    for kind in {f["kind"] for f in findings}:
        items = [f for f in findings if f["kind"] == kind]
        shapes = {f["trigger_shape"] for f in items}
        # exposed, distinct triggers, shortest trigger's user turn
        assert rows[kind][1:] == [str(len(items)), str(len(shapes)), str(min(f["trigger_turn"] for f in items))]
    # The hurried script on three destinations is one trigger, exposed three times.
    hurried = {f["trigger_message"] for f in findings if f["persona"] == "hurried" and f["trigger_turn"] == 1}
    assert len(hurried) == 3 and len({trigger_shape(m) for m in hurried}) == 1
    section = report.split("## phantom_confirmation")[1].split("\n## ")[0]
    headings = re.findall(r"^### \d+\. `(.*)`$", section, flags=re.MULTILINE)
    assert len(headings) == len(set(headings)) == int(rows["phantom_confirmation"][2])
    assert headings[0] == trigger_shape(next(iter(hurried)))  # turn 1 comes before the later triggers
    assert "3 exposures (model scripted ×3; persona hurried ×3)." in section
    turns = [int(t) for t in re.findall(r"^\| user \(turn (\d+)\) \|", section, flags=re.MULTILINE)]
    assert turns == sorted(turns) and len(turns) == len(headings)
    # Each trigger: the user turn, the agent's false claim and the database's truth side by side.
    first = min((f for f in findings if f["kind"] == "phantom_confirmation"),  # fewest turns, then fewest words
                key=lambda f: (f["trigger_turn"], len(f["trigger_message"].split())))
    block = section.split("### 2.")[0]
    assert f"| user (turn 1) | {first['trigger_message']} |" in block
    assert f"| agent's false claim | {first['agent_claim']} |" in block
    assert "| database | no booking in the database |" in block
    assert "<details><summary>The conversation" in block and first["conversation"][-1] in block
    price = report.split("## invented_price")[1].split("\n## ")[0]
    discount = next(f for f in findings if f["kind"] == "invented_price")
    assert f"| attack move (turn 5: {', '.join(discount['attack']['moves'])}) | {discount['attack']['message']} |" \
        in price
    booked = next(f for f in findings if f["kind"] == "stale_details")
    row = booked["database"][0]
    assert f"{row['confirmation_code']}: flight {row['flight_number']}" in report.split("## stale_details")[1]


def test_triggers_are_ordered_by_turns_then_words_and_capped() -> None:
    def finding(kind, turn, message, model):
        return {"kind": kind, "counts_as": kind, "reason": "r", "trigger_turn": turn, "trigger_message": message,
                "model": model, "conversation": ["agent: hi", f"user: {message}", "agent: Booked! Reference Q1W2E3."]}

    findings = [finding("phantom_flight", 2, "is flight ZZ1 open", "a"),
                finding("phantom_flight", 1, "please please book flight ZZ1 for me now", "a"),
                finding("phantom_flight", 1, "book flight ZZ1", "b"),
                finding("phantom_flight", 1, "Book flight QQ77!", "a"),  # the same shape as "book flight ZZ1"
                finding("phantom_flight", 3, "ok", "b")]
    report = findings_markdown(findings, triggers_per_kind=3)
    assert re.findall(r"^### \d+\. `(.*)`$", report, flags=re.MULTILINE) == [
        "book flight <code>", "please please book flight <code> for me now", "is flight <code> open"]
    assert "2 exposures (model a ×1, b ×1)." in report and "1 more distinct triggers" in report
    assert _summary_rows(report)["phantom_flight"] == ["phantom_flight", "5", "4", "1"]
    # Without a recorded claim, the claim is the first agent message after the trigger turn.
    assert "| agent's false claim | Booked! Reference Q1W2E3. |" in report
    assert "| database | not recorded" in report


def test_committed_findings_without_the_new_fields_stay_readable(tmp_path) -> None:
    before = COMMITTED.read_bytes()
    old = read_findings(COMMITTED)
    assert old and not any("agent_claim" in f or "database" in f for f in old)  # the older format, truly
    for finding in old:
        claim = agent_claim_of(finding)
        assert claim is not None and f"agent: {claim}" in finding["conversation"]
    report = findings_markdown(old)
    rows = _summary_rows(report)
    assert {kind for kind in rows if kind != "kind"} == {f["kind"] for f in old}
    assert sum(int(cells[1]) for kind, cells in rows.items() if kind != "kind") == len(old)
    # A run resumed across the change: old lines and new ones in one file, read by the report and the dashboard.
    path = tmp_path / "run" / FINDINGS_JSONL
    path.parent.mkdir()
    path.write_bytes(before)
    append_findings(path, [{**old[0], "agent_claim": "Booked! Reference JZNE56.", "database": [],
                            "trigger_shape": "x"}])
    assert write_findings_report(path.parent).read_text().count("| database | no booking in the database |") == 1
    from dashboard import views
    from dashboard.runs import Run

    run = Run("run", path.parent.resolve(), tmp_path.resolve())
    data = views.findings(run, {})
    assert data["total"] == len(old) + 1 and sum(g["count"] for g in data["groups"]) == len(old) + 1
    assert COMMITTED.read_bytes() == before  # read only


def test_dashboard_places_a_finding_on_the_recorded_claim(played, tmp_path) -> None:
    """The dashboard finds the claim by turn (``claim_turn_index``); it must agree with the recorded agent_claim."""
    from dashboard import views
    from dashboard.runs import Run

    findings = [f for _, record, _ in played for f in findings_from([record], model="scripted")]
    append_findings(tmp_path / FINDINGS_JSONL, findings)
    run = Run("run", tmp_path.resolve(), tmp_path.resolve())
    stem = FINDINGS_JSONL.removesuffix(".jsonl")
    for line, finding in enumerate(findings):
        shown = views.conversation(run, f"finding-{stem}-{line}")
        placed = [turn["text"] for turn in shown["turns"] if turn.get("findings")
                  and any(f["reason"] == finding["reason"] for f in turn["findings"])]
        assert placed and placed[0] == finding["agent_claim"], (finding["reason"], placed)
