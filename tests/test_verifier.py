"""The verifier: ground truth from a real database, claims in any phrasing, measured on the labelled corpus."""

from __future__ import annotations

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
from tests.verifier_corpus import HONEST, build_corpus, build_scenarios, score_corpus

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
