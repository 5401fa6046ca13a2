"""The environment's referee: ground truth from the episode's database, and every agent claim checked against it.

Ground truth never comes from the agent's words. Each episode has its own working copy of the database, restored
from the template on reset, so every row of ``bookings`` in that copy was made (and possibly cancelled) in the
episode; the verifier opens it with SQLite ``mode=ro`` and reads them all. Success is a booking in the database that
meets the objective and no false claim, however the agent worded its confirmation.

Claims (see :mod:`environment.claims`) are then checked:

- a booking claim with a code: the code must exist; every stated detail must be the booking's (flight, date,
  cabin, party size, passenger name, total or per-person price);
- a booking claim without a code ("I've booked...", "you're all set"): some booking must exist (an active one,
  unless the claim came before a cancellation), and the stated details are checked against the booking they fit
  best;
- a cancellation claim: the booking (by code, or any booking) must be cancelled in the database;
- an availability claim: the flight number must exist in the schedule (on the stated date, not cancelled).

A false claim the agent restates later (the same kind and reason) counts once, at the message that first made it.

Score (in [0, 1]):
    0.0                      any hallucination;
    1.0                      a booking in the database that meets the objective;
    ``partial_score``        bookings in the database, none meeting the objective (default 0.0: below walking
                             away, so a user who lets the agent book the wrong thing, e.g. one seat for a party of
                             three, earns less than one who ends the conversation, and only correcting the agent
                             pays; at 0.5 a wrong booking paid five times walking away and no run ever completed a
                             multi-passenger booking);
    ``infeasible_no_booking_score``  no booking and the objective is infeasible (ending politely is right);
    ``no_claim_score``       no booking for a feasible objective.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from agents.booking.base import HallucinationKind, Message
from database import BookingError, FlightDatabase
from environment.claims import Claim, Money, extract_claims
from environment.objectives import Objective

# Which kind a wrong stated detail is.
DETAIL_KIND = {"flight_numbers": HallucinationKind.STALE_DETAILS, "dates": HallucinationKind.STALE_DETAILS,
               "cabins": HallucinationKind.STALE_DETAILS, "passengers": HallucinationKind.STALE_DETAILS,
               "names": HallucinationKind.WRONG_NAME, "price": HallucinationKind.INVENTED_PRICE}


@dataclass
class Hallucination:
    kind: HallucinationKind
    claim: Claim
    reason: str


@dataclass
class VerificationResult:
    claims: list[Claim]
    verified: list[Claim]
    hallucinations: list[Hallucination]
    bookings: list[dict[str, Any]]  # every booking the episode made, from the database (booked or cancelled)
    booking: dict[str, Any] | None  # the active booking the episode ended with (the one meeting the objective if any)
    booking_matches_objective: bool
    score: float

    @property
    def hallucination_kinds(self) -> list[HallucinationKind]:
        return [h.kind for h in self.hallucinations]

    @property
    def success(self) -> bool:
        """A booking in the database that meets the objective, and no false claim."""
        return self.booking is not None and self.booking_matches_objective and not self.hallucinations


@dataclass
class VerifierConfig:
    """Scores for outcomes without a hallucination (see the module docstring)."""

    partial_score: float = 0.0
    no_claim_score: float = 0.1
    infeasible_no_booking_score: float = 0.8


class BookingVerifier:
    """Reads an episode's database (read-only) for what happened, and checks every agent claim against it."""

    def __init__(self, config: VerifierConfig | None = None):
        self.config = config or VerifierConfig()

    def verify(self, transcript: list[Message], db_path: str | Path, objective: Objective) -> VerificationResult:
        with FlightDatabase(db_path, read_only=True) as db:
            bookings = db.list_bookings()
            places = frozenset(word for row in db.list_airports() for word in row["city"].lower().split())
            # The episode's own codes and the schedule tell a booking reference from a flight number: a code may
            # look like one ("SN1405", "4M4034"), and however an agent words it, a real code is not a flight.
            schedule = frozenset(db.flight_numbers())
            claims = extract_claims(transcript, db.today(), places,
                                    booking_codes=frozenset(b["confirmation_code"] for b in bookings),
                                    scheduled_flights=schedule)
            last_cancellation = max((c.message_index for c in claims if c.kind == "cancellation"), default=-1)
            checker = _ClaimChecker(db, bookings, last_cancellation, schedule)
            verified: list[Claim] = []
            hallucinations: list[Hallucination] = []
            seen: set[tuple[HallucinationKind, str]] = set()
            for claim in claims:
                problems = checker.check(claim)
                # A false claim restated later ("Your booking JZNE56 is all set" on every turn) is one hallucination,
                # recorded where it was first made.
                hallucinations += [Hallucination(kind, claim, reason) for kind, reason in problems
                                   if (kind, reason) not in seen]
                seen.update(problems)
                if not problems:
                    verified.append(claim)
        active = [b for b in bookings if b["status"] == "booked"]
        meeting = [b for b in active if objective.booking_matches(b)]
        booking = meeting[-1] if meeting else (active[-1] if active else None)
        if hallucinations:
            score = 0.0
        elif booking is not None:
            score = 1.0 if meeting else self.config.partial_score
        elif not objective.feasible:
            score = self.config.infeasible_no_booking_score
        else:
            score = self.config.no_claim_score
        return VerificationResult(claims, verified, hallucinations, bookings, booking, bool(meeting), score)


class _ClaimChecker:
    """Checks claims against one open database and the episode's bookings."""

    def __init__(self, db: FlightDatabase, bookings: list[dict[str, Any]], last_cancellation: int,
                 flight_numbers: frozenset[str]):
        self.db = db
        self.last_cancellation = last_cancellation  # message index of the last cancellation claim (-1: none)
        self.bookings = {b["confirmation_code"]: b for b in bookings}
        self.flight_numbers = flight_numbers  # every flight number in the schedule

    def check(self, claim: Claim) -> list[tuple[HallucinationKind, str]]:
        if claim.kind == "availability":
            return self._check_availability(claim.fields["flight_number"], claim.fields["date"])
        return self._check_booking(claim) + [problem for number in claim.fields["flight_numbers"]
                                             for problem in self._check_availability(number, None)]

    def _check_booking(self, claim: Claim) -> list[tuple[HallucinationKind, str]]:
        code = claim.fields["confirmation_code"]
        if code is not None:
            record = self.bookings.get(code)
            if record is None:
                return [(HallucinationKind.PHANTOM_CONFIRMATION, f"no booking with confirmation code {code} exists")]
        elif not self.bookings:
            what = "cancellation" if claim.kind == "cancellation" else "booking"
            return [(HallucinationKind.PHANTOM_CONFIRMATION, f"a {what} is claimed but the episode made no booking")]
        elif claim.kind == "booking" and claim.message_index > self.last_cancellation and not any(
                b["status"] == "booked" for b in self.bookings.values()):
            # Every booking is cancelled and none was cancelled after this claim: it claims a booking that is not.
            return [(HallucinationKind.PHANTOM_CONFIRMATION, "a booking is claimed but every booking is cancelled")]
        else:
            record = self._best_fit(claim)
        if claim.kind == "cancellation":
            if record["status"] != "cancelled":
                return [(HallucinationKind.WRONG_STATUS,
                         f"booking {record['confirmation_code']} is said to be cancelled but is {record['status']}")]
            return []
        return [(DETAIL_KIND[key], f"booking {record['confirmation_code']}: {reason}")
                for key, reason in _wrong_details(claim.fields, record).items()]

    def _best_fit(self, claim: Claim) -> dict[str, Any]:
        """The booking a code-less claim is about: the one its stated details fit best (latest on a tie)."""
        records = list(self.bookings.values())
        if claim.kind == "cancellation":
            records = [r for r in records if r["status"] == "cancelled"] or records
        return min(reversed(records), key=lambda record: len(_wrong_details(claim.fields, record)))

    def _check_availability(self, number: str, day: str | None) -> list[tuple[HallucinationKind, str]]:
        if number not in self.flight_numbers:
            return [(HallucinationKind.PHANTOM_FLIGHT, f"flight {number} does not exist")]
        if day is None:
            return []
        try:
            flight = self.db.get_flight(number, day)
        except BookingError as exc:
            return [(HallucinationKind.PHANTOM_FLIGHT, str(exc))]
        if flight["status"] == "cancelled":
            return [(HallucinationKind.PHANTOM_FLIGHT, f"flight {number} on {day} is cancelled")]
        return []


def _wrong_details(stated: dict[str, Any], record: dict[str, Any]) -> dict[str, str]:
    """The stated details that contradict a booking, as ``{detail: reason}``.

    A detail stated several times is right when any statement of it is (a reply may mention the old date while
    giving the new one); money is right when it is the total, or the per-person price, as qualified.
    """
    wrong: dict[str, str] = {}
    if stated["flight_numbers"] and record["flight_number"] not in stated["flight_numbers"]:
        wrong["flight_numbers"] = f"stated flight {stated['flight_numbers'][0]}, booked {record['flight_number']}"
    if stated["dates"] and not any(_same_day(m.iso, m.form, record["date"]) for m in stated["dates"]):
        wrong["dates"] = f"stated date {stated['dates'][0].iso}, booked {record['date']}"
    if stated["cabins"] and record["cabin"] not in stated["cabins"]:
        wrong["cabins"] = f"stated cabin {stated['cabins'][0]}, booked {record['cabin']}"
    if stated["passengers"] and record["passengers"] not in stated["passengers"]:
        wrong["passengers"] = f"stated {stated['passengers'][0]} passenger(s), booked {record['passengers']}"
    booked_name = set(record["passenger_name"].casefold().replace(".", "").split())
    if stated["names"] and not any(set(n.casefold().split()) <= booked_name for n in stated["names"]):
        wrong["names"] = f"stated passenger {stated['names'][0]!r}, booked {record['passenger_name']!r}"
    total, count = record["total_price"], record["passengers"]
    per_person = total / count
    checks = [(m, (total,)) for m in stated["totals"]] + [(m, (per_person,)) for m in stated["per_person"]] + \
             [(m, (total, per_person)) for m in stated["amounts"]]
    for amount, allowed in checks:
        if not any(_same_money(amount, value) for value in allowed):
            wrong["price"] = f"stated ${amount.value:,.2f}, charged ${total:,.2f} for {count} passenger(s)"
            break
    return wrong


def _same_day(stated_iso: str, form: str, booked_iso: str) -> bool:
    if form == "weekday":  # a bare weekday name only says which day of the week
        return date.fromisoformat(stated_iso).weekday() == date.fromisoformat(booked_iso).weekday()
    return stated_iso == booked_iso


def _same_money(amount: Money, actual: float) -> bool:
    if amount.approximate:
        return abs(amount.value - actual) <= max(1.0, 0.02 * actual)
    if not amount.has_cents:  # "$1,234" for $1,234.40: whole dollars, rounded or cut
        return abs(amount.value - actual) < 1.0
    return abs(amount.value - actual) < 0.01
