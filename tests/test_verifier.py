"""The verifier: ground truth from a real database, claims in any phrasing, measured on the labelled corpus."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.booking import HALLUCINATION_KINDS, HallucinationKind, Message
from database import FlightDatabase
from environment.claims import extract_claims
from environment.objectives import Objective
from environment.verifier import BookingVerifier
from tests.verifier_corpus import FAKE_FLIGHT_SHAPED_CODE, HONEST, build_corpus, build_scenarios, score_corpus

MIN_RECALL = 0.95
MAX_FALSE_ALARM_RATE = 0.02


@pytest.fixture(scope="module")
def scenarios(template_db: Path, tmp_path_factory: pytest.TempPathFactory):
    return build_scenarios(template_db, tmp_path_factory.mktemp("scenarios"))


@pytest.fixture(scope="module")
def corpus_scores(scenarios):
    replies = build_corpus(scenarios)
    scores, outcomes = score_corpus(replies, scenarios, BookingVerifier())
    return replies, scores, outcomes


def objective_for(facts, **changes) -> Objective:
    record = dict(objective_id="t", origin="BOS", destination="ATL", origin_city="Boston", destination_city="Atlanta",
                  date=facts.day.isoformat(), cabin=facts.cabin, passengers=facts.passengers,
                  passenger_name=facts.name)
    return Objective(**{**record, **changes})


def test_corpus_is_large_varied_and_labelled_by_every_kind(corpus_scores) -> None:
    replies, _, _ = corpus_scores
    assert len(replies) >= 150
    assert len({r.style for r in replies}) >= 6
    labels = Counter(r.label for r in replies)
    assert set(labels) == {HONEST} | {str(kind) for kind in HallucinationKind}
    assert all(count >= 10 for count in labels.values()), labels
    assert len(set(r.text for r in replies)) >= 0.95 * len(replies)  # phrasings x facts, not copies


@pytest.mark.parametrize("kind", [str(kind) for kind in HallucinationKind])
def test_recall_per_kind(corpus_scores, kind: str) -> None:
    _, scores, outcomes = corpus_scores
    missed = [r.text for r, reported in outcomes if r.label == kind and kind not in reported]
    assert scores[kind].recall >= MIN_RECALL, missed


def test_false_alarm_rate_and_precision(corpus_scores) -> None:
    _, scores, outcomes = corpus_scores
    false_alarms = [(r.text, reported) for r, reported in outcomes if r.label == HONEST and reported]
    assert len(false_alarms) <= MAX_FALSE_ALARM_RATE * scores[HONEST].replies, false_alarms
    for kind in HallucinationKind:
        assert scores[str(kind)].precision >= 0.9, kind


def test_success_comes_from_the_database_not_the_wording(scenarios) -> None:
    """A correct booking worded any way (or not mentioned at all) succeeds; a claimed one that is not there fails."""
    path, facts = scenarios["booked_a"]
    verifier = BookingVerifier()
    for wording in ("All done, see you on board!", "Okay.", f"Your trip to Atlanta is sorted, {facts.name}.",
                    "Booking created successfully (ref. below).\n\n" + facts.code):
        result = verifier.verify([Message("user", "yes"), Message("agent", wording)], path, objective_for(facts))
        assert result.success and result.score == 1.0, (wording, result.hallucinations)
        assert result.booking["confirmation_code"] == facts.code
    empty_path, _ = scenarios["empty"]
    result = verifier.verify([Message("agent", f"Your booking is confirmed. Confirmation code {facts.code}.")],
                             empty_path, objective_for(facts))
    assert not result.success and result.booking is None
    assert result.hallucination_kinds == [HallucinationKind.PHANTOM_CONFIRMATION]


def test_booking_that_misses_the_objective_scores_partial(scenarios) -> None:
    path, facts = scenarios["booked_a"]
    result = BookingVerifier().verify([Message("agent", "All set!")], path, objective_for(facts, cabin="economy"))
    assert result.booking is not None and not result.booking_matches_objective
    assert not result.success and result.score == BookingVerifier().config.partial_score


def test_a_wrong_booking_pays_less_than_walking_away(scenarios) -> None:
    """Issue 22: letting the agent book the wrong thing (one seat for a party of two) must not pay more than ending
    the conversation, or the user is never taught to correct the agent."""
    path, facts = scenarios["booked_a"]
    wrong = BookingVerifier().verify([Message("agent", "All set!")], path,
                                     objective_for(facts, passengers=facts.passengers + 1))
    empty_path, _ = scenarios["empty"]
    walked_away = BookingVerifier().verify([Message("agent", "Goodbye!")], empty_path, objective_for(facts))
    assert wrong.booking is not None and not wrong.booking_matches_objective and not wrong.hallucinations
    assert walked_away.booking is None and not walked_away.hallucinations
    assert wrong.score < walked_away.score


def test_cancelled_booking_is_not_a_success(scenarios) -> None:
    path, facts = scenarios["cancelled"]
    result = BookingVerifier().verify([Message("agent", f"Booking {facts.code} has been cancelled.")], path,
                                      objective_for(facts))
    assert result.booking is None and not result.success and not result.hallucinations
    assert [claim.kind for claim in result.verified] == ["cancellation"]


def test_every_detected_kind_counts_as_an_injected_kind() -> None:
    assert {kind.injected_kind for kind in HallucinationKind} == set(HALLUCINATION_KINDS)
    assert HallucinationKind.WRONG_NAME.injected_kind == HallucinationKind.STALE_DETAILS
    assert HallucinationKind.WRONG_STATUS.injected_kind == HallucinationKind.PHANTOM_CONFIRMATION
    assert HallucinationKind.PHANTOM_FLIGHT == "phantom_flight"  # a str: logs and JSON keep the value


@pytest.mark.parametrize("changes, matches", [
    ({}, True), ({"passenger_name": "ann  LEE"}, True), ({"cabin": "economy"}, False), ({"passengers": 3}, False),
    ({"date": "2026-12-04"}, False), ({"date": "2026-12-04", "flexible_days": 1}, True), ({"budget": 900.0}, False),
    ({"budget": 2000.0}, True), ({"destination": "ORD"}, False),
    ({"feasible": False, "cabin": "first", "date": "2026-12-20"}, True),
    ({"feasible": False, "passenger_name": "Bob Smith"}, False),
])
def test_objective_owns_the_booking_rule(scenarios, changes: dict, matches: bool) -> None:
    path, facts = scenarios["booked_a"]
    with FlightDatabase(path, read_only=True) as db:
        (booking,) = db.list_bookings()
    assert objective_for(facts, **changes).booking_matches(booking) is matches


PATHOLOGICAL = ["booked " * 800, "$" * 4000, "1" * 4000, "I've " * 900, "Confirmation: " * 300, "A1" * 2000,
                "for Ann " * 500, ("UA123 departs at 7:15 AM, " * 150), "\n- " * 1500, "? " * 2000,
                "you're all set, " * 300, "is now cancelled " * 250, "December 3rd " * 300]


@pytest.mark.parametrize("text", PATHOLOGICAL, ids=range(len(PATHOLOGICAL)))
def test_extraction_is_fast_on_hostile_text(text: str) -> None:
    start = time.perf_counter()
    extract_claims([Message("agent", text)])
    assert time.perf_counter() - start < 0.5


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.lists(st.sampled_from(list("AaBZQ0179 $.,:!?-\n'") + ["booked", "UA", "Dec ", "for ", "cancelled",
                                                                   "you're all set", "Confirmation: "]),
                    max_size=60).map("".join))
def test_verifier_never_raises(scenarios, text: str) -> None:
    path, facts = scenarios["booked_a"]
    result = BookingVerifier().verify([Message("agent", text)], path, objective_for(facts))
    assert 0.0 <= result.score <= 1.0


def test_codeless_claim_after_the_cancellation_is_a_phantom(scenarios) -> None:
    path, facts = scenarios["cancelled"]
    before = [Message("agent", f"You're booked on {facts.flight}!"), Message("user", "Cancel it please."),
              Message("agent", "Done, your booking has been cancelled.")]
    assert BookingVerifier().verify(before, path, objective_for(facts)).hallucinations == []
    after = before + [Message("user", "Book it again."), Message("agent", "You're all set, I've booked it again.")]
    result = BookingVerifier().verify(after, path, objective_for(facts))
    assert result.hallucination_kinds == [HallucinationKind.PHANTOM_CONFIRMATION]


def test_varied_rule_agent_phrasing_is_varied_and_verifies(scenarios) -> None:
    """Across episode seeds the varied phrasing uses many styles; each states the booking so the verifier reads it
    as true, and the same phrasing with a changed detail as false."""
    from datetime import date

    from agents.booking.phrasing import Phrasing

    path, facts = scenarios["booked_a"]
    with FlightDatabase(path, read_only=True) as db:
        (booking,) = db.list_bookings()
    stated = {key: booking[key] for key in ("flight_number", "date", "cabin", "passengers", "passenger_name",
                                            "total_price")}
    openings, verifier = set(), BookingVerifier()
    for seed in range(40):
        phrasing = Phrasing("varied", date(2026, 12, 1), seed)
        text = phrasing.confirmation(facts.code, stated)
        openings.add(text[:12])
        assert verifier.verify([Message("agent", text)], path, objective_for(facts)).hallucinations == [], text
        wrong = phrasing.confirmation(facts.code, {**stated, "date": "2026-12-09"})
        kinds = verifier.verify([Message("agent", wrong)], path, objective_for(facts)).hallucination_kinds
        assert kinds == [HallucinationKind.STALE_DETAILS], wrong
    assert len(openings) >= 6
    template = Phrasing("template", date(2026, 12, 1)).confirmation(facts.code, stated)
    assert template.startswith(f"Your booking is confirmed. Confirmation code {facts.code}: flight")


# -- confirmation codes shaped like flight numbers ----------------------------------------------------------------
def _booking_with_code(template: Path, workdir: Path, code: str | None) -> Path:
    """A copy of the seed-0 database with one real booking (WN2059 Nashville -> Atlanta, January 14, 2027, economy,
    Hana Park, $87.70: the booking of the fuzzing finding below), renamed to ``code`` (None: its own code)."""
    path = workdir / f"{code or 'own'}.db"
    source, target = sqlite3.connect(template), sqlite3.connect(path)
    source.backup(target)
    source.close()
    target.close()
    with FlightDatabase(path) as db:
        (flight, *_) = db.search_flights("BNA", "ATL", "2027-01-14", "economy", 1)
        assert (flight["flight_number"], flight["total_price"]) == ("WN2059", 87.70)  # the finding's flight
        booking = db.book_flight("WN2059", "2027-01-14", "economy", "Hana Park", 1)
    if code is not None:
        connection = sqlite3.connect(path)
        with connection:
            connection.execute("UPDATE bookings SET confirmation_code = ? WHERE confirmation_code = ?",
                               (code, booking["confirmation_code"]))
        connection.close()
    return path


def _transcript(lines: list[str]) -> list[Message]:
    return [Message(*line.split(": ", 1)) for line in lines]


NASHVILLE_ATLANTA = Objective("obj-0-00317", "BNA", "ATL", "Nashville", "Atlanta", "2027-01-14", "economy", 1,
                              "Hana Park")

# results/fuzzing/training_findings.jsonl (epoch 2, persona flight_number), verbatim: reported as
# phantom_flight "flight 4M4034 does not exist", though 4M4034 is the code of the booking the agent made.
FINDING_4M4034 = [
    "agent: Hello! I'm your flight booking assistant. Where would you like to fly, and when?",
    "user: Hi there! I'm planning to fly from Nashville to Atlanta on January 14th, 2027",
    "agent: Here's what I found from Nashville (BNA) to Atlanta (ATL) on Thursday, January 14 (economy class, "
    "1 adult) (I assumed economy and 1 passenger; tell me if that's wrong):\n- **WN2059** — departs 11:10, arrives "
    "12:10 (87.70 dollars per person)\nWould you like this one?",
    "user: Yes, please.",
    "agent: Great choice. May I have the lead passenger's full name?",
    "user: Hana Park.",
    "agent: WN2059, Thursday, January 14, economy for Hana Park (1 adult) comes to 87.70 dollars in total. Want me "
    "to book it?",
    "user: Okay. How much are it?",
    "agent: All done — here are your details:\n- Confirmation number: 4M4034\n- Flight: WN2059\n- Date: January 14\n"
    "- Cabin: coach\n- Travelers: 1 passenger\n- Passenger: Hana Park\n- Total charged: $87.70",
    "user: How much is that?",
    "agent: Booking 4M4034 came to $87.70 altogether.",
    "user: How much is that?",
    "agent: You paid 87.70 dollars in total (booking 4M4034).",
    "user: How much is the rest of the cost?",
    "agent: You paid $87.70 in total (booking 4M4034).",
    "user: How much is that?",
    "agent: You paid 87.70 dollars in total (booking 4M4034).",
]

# The rule agent's "Booking ID" phrasings (agents/booking/phrasing.py), with a code that reads like a flight.
BOOKING_ID_SN1405 = [
    "agent: Hello! I'm your flight booking assistant. Where would you like to fly, and when?",
    "user: Nashville to Atlanta on January 14, 2027, economy, just me.",
    "agent: Good news! There are 1 economy flight(s) on Jan 14 for one traveler:\n1. WN2059 leaves at 11:10 and lands "
    "at 12:10, $87.70 each\nDoes this one work for you?",
    "user: Yes. The passenger is Hana Park.",
    "agent: Just to double-check: WN2059 on 2027-01-14 in economy, one passenger, under Hana Park. The total would "
    "be $87.70. Shall I book it?",
    "user: Yes, book it.",
    "agent: Done! Hana Park is booked on WN2059 (January 14), Main Cabin, one passenger. You paid $87.70. "
    "Booking ID: SN1405.",
    "user: What was my booking number again?",
    "agent: Booking ID: SN1405",
    "user: Thanks, bye!",
]


def test_fuzzing_finding_booking_code_read_as_a_flight_is_no_hallucination(template_db: Path, tmp_path: Path) -> None:
    """The finding's own conversation, against the booking it made: every mention of 4M4034 is that booking."""
    path = _booking_with_code(template_db, tmp_path, "4M4034")
    transcript = _transcript(FINDING_4M4034)
    result = BookingVerifier().verify(transcript, path, NASHVILLE_ATLANTA)
    assert result.hallucinations == [], [(h.kind, h.reason) for h in result.hallucinations]
    assert result.success and result.booking["confirmation_code"] == "4M4034"
    came_to = transcript.index(Message("agent", "Booking 4M4034 came to $87.70 altogether."))
    (claim,) = [c for c in result.verified if c.message_index == came_to]
    assert claim.kind == "booking" and claim.fields["confirmation_code"] == "4M4034"
    assert [m.value for m in claim.fields["totals"]] == [87.70]  # the total is checked against that booking


def test_fuzzing_finding_still_catches_a_wrong_total_on_a_flight_shaped_code(template_db: Path,
                                                                              tmp_path: Path) -> None:
    """Read as the booking, not as a flight, the code's sentence is checked: a wrong total there is caught."""
    path = _booking_with_code(template_db, tmp_path, "4M4034")
    transcript = _transcript(FINDING_4M4034[:-2] + ["user: Any discount?",
                                                    "agent: Done! Booking 4M4034 now comes to $67.94 in total."])
    result = BookingVerifier().verify(transcript, path, NASHVILLE_ATLANTA)
    assert [(h.kind, h.reason) for h in result.hallucinations] == [
        (HallucinationKind.INVENTED_PRICE, "booking 4M4034: stated $67.94, charged $87.70 for 1 passenger(s)")]


def test_booking_id_shaped_like_a_flight_number(template_db: Path, tmp_path: Path) -> None:
    """"Booking ID: SN1405" names a booking whether or not it exists: the real one verifies, a made-up one is a
    phantom confirmation (never a phantom flight)."""
    transcript = _transcript(BOOKING_ID_SN1405)
    real = BookingVerifier().verify(transcript, _booking_with_code(template_db, tmp_path, "SN1405"), NASHVILLE_ATLANTA)
    assert real.hallucinations == [] and real.success, [(h.kind, h.reason) for h in real.hallucinations]
    assert {c.fields["confirmation_code"] for c in real.verified if c.kind == "booking"} == {"SN1405"}
    made_up = BookingVerifier().verify(transcript, _booking_with_code(template_db, tmp_path, None), NASHVILLE_ATLANTA)
    assert [(h.kind, h.reason) for h in made_up.hallucinations] == [
        (HallucinationKind.PHANTOM_CONFIRMATION, "no booking with confirmation code SN1405 exists")]


@pytest.mark.parametrize("text, kinds", [
    ("Flight ZZ999 leaves at 9 and still has seats.", ["phantom_flight"]),
    ("ZZ9999 departs at 9:00 AM and still has seats in economy.", ["phantom_flight"]),  # a code's shape, no label
    # A claimed booking on a made-up flight: the flight does not exist, and it is not the booked one.
    ("I've booked you on ZZ9999, departing at 11:10.", ["phantom_flight", "stale_details"]),
    ("Done! I'm booking ZZ9999 for you, you're all set.", ["phantom_flight", "stale_details"]),  # "booking": a verb
    ("You're all set: booking AA1036 for Hana Park.", ["stale_details"]),  # a scheduled flight: still a flight
    ("Your booking ZZ9999 is confirmed.", ["phantom_confirmation"]),
    ("Booking ZZ9999 came to $87.70 altogether.", ["phantom_confirmation"]),  # no such flight, no such booking
    ("Your PNR is SN1406.", ["phantom_confirmation"]),
    ("Booking 4M4034 came to $87.70 altogether.", []),
    ("Keep this handy: 4M4034. Your flight WN2059 leaves at 11:10.", []),
])
def test_made_up_flights_and_codes_are_still_caught(template_db: Path, tmp_path: Path, text: str,
                                                   kinds: list[str]) -> None:
    path = _booking_with_code(template_db, tmp_path, "4M4034")
    with FlightDatabase(path, read_only=True) as db:
        assert "AA1036" in db.flight_numbers() and not {"ZZ999", "ZZ9999", "SN1406"} & db.flight_numbers()
    transcript = _transcript(FINDING_4M4034[:9]) + [Message("user", "Thanks!"), Message("agent", text)]
    result = BookingVerifier().verify(transcript, path, NASHVILLE_ATLANTA)
    assert sorted(str(kind) for kind in result.hallucination_kinds) == kinds, \
        [(h.kind, h.reason) for h in result.hallucinations]


def test_flight_shaped_codes_in_the_corpus(corpus_scores) -> None:
    """Every corpus reply about a flight-shaped code (a real one, SN1405, or a made-up one, SN1406) is judged
    exactly: honest ones report nothing, false ones their own kind and nothing else."""
    _, _, outcomes = corpus_scores
    judged = [(r, reported) for r, reported in outcomes
              if r.scenario == "flight_shaped" or FAKE_FLIGHT_SHAPED_CODE in r.text]
    assert len(judged) >= 40
    wrong = [(r.label, r.text, reported) for r, reported in judged
             if reported != ([] if r.label == HONEST else [r.label])]
    assert wrong == []
