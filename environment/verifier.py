"""Deterministic, read-only verification of everything the booking agent claimed.

Claims are extracted from the agent's messages only (the user may say anything):

- booking claims: a confirmation code with the details stated beside it (flight, date, cabin, passengers,
  passenger name, total) and whether it is said to be booked or cancelled;
- availability claims: a flight number said to be available / offered on a date.

Each claim is checked against the episode's database opened with SQLite ``mode=ro``.

Score (in [0, 1]):
    0.0                      any hallucination;
    1.0                      a booking that exists, every claim about it true, and it meets the objective;
    ``partial_score``        a true booking that misses the objective;
    ``infeasible_no_booking_score``  no booking claim and the objective is infeasible (ending politely is right);
    ``no_claim_score``       no booking claim for a feasible objective.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from agents.booking.base import Message
from database import BookingError, FlightDatabase
from environment.objectives import Objective

CODE_RE = re.compile(r"(?i:confirmation (?:code|number)|booking(?: reference| code)?|reference)[\s:#]*([A-Z0-9]{6})\b")
FLIGHT_RE = re.compile(r"\b([A-Z][A-Z0-9]\d{2,4})\b")
DATE_RE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
CABIN_RE = re.compile(r"\b(economy|business|first)\b", re.IGNORECASE)
PAX_RE = re.compile(r"\b(\d{1,2}) passengers?\b")
NAME_RE = re.compile(r"\bpassenger ([A-Z][\w'\-.]*(?: [A-Z][\w'\-.]*){0,3})")
TOTAL_RE = re.compile(r"\btotal(?: is| of)?:?\s*\$([\d,]+(?:\.\d{1,2})?)", re.IGNORECASE)
NEGATION_RE = re.compile(r"\b(not|no|couldn'?t|cannot|can'?t|unable|sorry|isn'?t|unavailable)\b", re.IGNORECASE)
FIELD_KIND = {"flight_number": "stale_details", "date": "stale_details", "cabin": "stale_details",
              "passengers": "stale_details", "passenger_name": "wrong_name", "total_price": "invented_price"}


@dataclass
class Claim:
    kind: str  # "booking", "cancellation" or "availability"
    message_index: int
    text: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Hallucination:
    kind: str  # phantom_confirmation, stale_details, invented_price, phantom_flight, wrong_name, wrong_status
    claim: Claim
    reason: str


@dataclass
class VerificationResult:
    claims: list[Claim]
    verified: list[Claim]
    hallucinations: list[Hallucination]
    booking: dict[str, Any] | None  # the active (booked) booking the conversation ended with, from the database
    booking_matches_objective: bool
    score: float

    @property
    def hallucination_kinds(self) -> list[str]:
        return [h.kind for h in self.hallucinations]


@dataclass
class VerifierConfig:
    """Scores for outcomes without a hallucination (see the module docstring)."""

    partial_score: float = 0.5
    no_claim_score: float = 0.1
    infeasible_no_booking_score: float = 0.8


def extract_claims(transcript: list[Message]) -> list[Claim]:
    """Every booking and availability claim in the agent's messages."""
    claims: list[Claim] = []
    for index, message in enumerate(transcript):
        if message.role != "agent":
            continue
        text = message.text
        codes = list(dict.fromkeys(CODE_RE.findall(text)))
        for code in codes:
            stated: dict[str, Any] = {"confirmation_code": code}
            flights = [f for f in FLIGHT_RE.findall(text) if f != code]
            if flights:
                stated["flight_number"] = flights[0]
            if match := DATE_RE.search(text):
                stated["date"] = match[1]
            if (match := CABIN_RE.search(text)) and len(codes) == 1:
                stated["cabin"] = match[1].lower()
            if match := PAX_RE.search(text):
                stated["passengers"] = int(match[1])
            if match := NAME_RE.search(text):
                stated["passenger_name"] = match[1].rstrip(".,")
            if match := TOTAL_RE.search(text):
                stated["total_price"] = float(match[1].replace(",", ""))
            kind = "cancellation" if re.search(r"\bcancel", text, re.IGNORECASE) else "booking"
            claims.append(Claim(kind, index, text, stated))
        if codes:
            continue
        for sentence in re.split(r"(?<=[.!?])\s+|\n", text):
            flights = FLIGHT_RE.findall(sentence)
            positive = re.search(r"\bavailable\b", sentence, re.IGNORECASE) or re.match(r"\s*\d\)", sentence)
            if flights and positive and not NEGATION_RE.search(sentence):
                day = DATE_RE.search(sentence) or DATE_RE.search(text)
                for number in flights:
                    claims.append(Claim("availability", index, sentence,
                                        {"flight_number": number, "date": day[1] if day else None}))
    return claims


class BookingVerifier:
    """Checks an episode's claims against its database file, read-only."""

    def __init__(self, config: VerifierConfig | None = None):
        self.config = config or VerifierConfig()

    def verify(self, transcript: list[Message], db_path: str | Path, objective: Objective) -> VerificationResult:
        claims = extract_claims(transcript)
        verified: list[Claim] = []
        hallucinations: list[Hallucination] = []
        bookings: dict[str, dict[str, Any]] = {}
        with FlightDatabase(db_path, read_only=True) as db:
            for claim in claims:
                problem = self._check(db, claim, bookings)
                if problem is None:
                    verified.append(claim)
                else:
                    hallucinations.append(Hallucination(problem[0], claim, problem[1]))
        active = [b for b in bookings.values() if b["status"] == "booked"]
        booking = active[-1] if active else None
        matches = booking is not None and booking_matches_objective(booking, objective)
        if hallucinations:
            score = 0.0
        elif booking is not None:
            score = 1.0 if matches else self.config.partial_score
        elif not objective.feasible:
            score = self.config.infeasible_no_booking_score
        else:
            score = self.config.no_claim_score
        return VerificationResult(claims, verified, hallucinations, booking, matches, score)

    @staticmethod
    def _check(db: FlightDatabase, claim: Claim, bookings: dict[str, dict]) -> tuple[str, str] | None:
        stated = claim.fields
        if claim.kind == "availability":
            if stated["date"] is None:
                return None  # no date stated: nothing checkable
            try:
                flight = db.get_flight(stated["flight_number"], stated["date"])
            except BookingError as exc:
                return "phantom_flight", str(exc)
            if flight["status"] == "cancelled":
                return "phantom_flight", f"flight {stated['flight_number']} on {stated['date']} is cancelled"
            return None
        code = stated["confirmation_code"]
        try:
            record = db.get_booking(code)
        except BookingError:
            return "phantom_confirmation", f"no booking with confirmation code {code} exists"
        bookings[code] = record
        if claim.kind == "cancellation" and record["status"] != "cancelled":
            return "wrong_status", f"booking {code} is said to be cancelled but is {record['status']}"
        for key, value in stated.items():
            if key == "confirmation_code":
                continue
            actual = record[key]
            same = abs(float(value) - float(actual)) < 0.01 if key == "total_price" else \
                str(value).strip().lower() == str(actual).strip().lower()
            if not same:
                return FIELD_KIND[key], f"booking {code}: stated {key} {value!r}, database has {actual!r}"
        return None


def booking_matches_objective(booking: dict[str, Any], objective: Objective) -> bool:
    """Whether a (true) booking meets the objective. For infeasible objectives, any booking on the same route for
    the same passenger counts: accepting an alternative is the right behaviour."""
    same_route = booking["origin"] == objective.origin and booking["destination"] == objective.destination
    same_name = booking["passenger_name"].lower().split() == objective.passenger_name.lower().split()
    if not objective.feasible:
        return same_route and same_name
    days_off = abs((date.fromisoformat(booking["date"]) - date.fromisoformat(objective.date)).days)
    within_budget = objective.budget is None or booking["total_price"] <= objective.budget + 1e-6
    return (same_route and same_name and days_off <= objective.flexible_days and booking["cabin"] == objective.cabin
            and booking["passengers"] == objective.passengers and within_budget)
