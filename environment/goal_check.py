"""What the agent's latest search got wrong about the traveller's goal: the state's goal check and the
demonstrators' corrections read it from here.

The booking agent fills a detail nobody gave it with a default ("I assumed economy and 1 passenger"). A traveller
of a party of 3 notices and corrects it. A small policy that sees the objective and the search side by side in
its state string rarely makes that comparison itself: no warm start or PPO run has completed a multi-passenger
booking. With ``environment.goal_check`` the environment, which holds both, states the difference in the booking
context line::

    Booking context: MSP to ORD on 2026-12-14, economy, 1 passenger(s): 1 flight(s); not your goal: 1 passenger
    (you want 3)

After a search that matches the goal and found nothing, the note says which dates within the objective's
flexibility no search has tried yet, or that none is left (the one right move then is to end politely)::

    Booking context: MCO to TPA on 2026-12-02, economy, 1 passenger(s): 0 flight(s); no flights: no other date
    fits your goal

With a window of one agent message the policy cannot see which dates it already asked for; the environment can.
The note states the search's result from the database, so it says "no flights" even when the agent's message
lists flights anyway (a hallucination the verifier then reports).

The search comes from the environment's booking context (the agent's tool calls, any backend). A detail the
user's latest message already restated differently is left out: the agent has not searched again yet, and the
correction was made (the demonstrators' rule, :func:`pending_search`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from agents.nlu import parse_cabin, parse_date, parse_passengers
from environment.objectives import Objective

if TYPE_CHECKING:
    from environment.conversation import ConversationState

__all__ = ["CHECKED_DETAILS", "Mismatch", "Search", "goal_check_note", "latest_search", "pending_search",
           "search_mismatches", "superseded", "untried_dates"]

# The search details a traveller corrects, in the order the demonstrators correct them.
CHECKED_DETAILS = ("passengers", "cabin", "date")

_SEARCH_CONTEXT = re.compile(r"^(\w{3}) to (\w{3}) on (\d{4}-\d{2}-\d{2}), (\w+), (\d+) passenger\(s\): (\d+) flight")


@dataclass(frozen=True)
class Search:
    """The agent's latest search, from the environment's booking context (its tool calls, any backend)."""

    origin: str
    destination: str
    date: str
    cabin: str
    passengers: int
    count: int


@dataclass(frozen=True)
class Mismatch:
    """One search detail that differs from the objective: what the agent searched and what the traveller wants."""

    detail: str
    searched: object
    wanted: object

    def describe(self) -> str:
        """"1 passenger (you want 3)", "economy (you want business)", "2026-12-14 (you want 2026-12-16)"."""
        unit = f" passenger{'s' if self.searched != 1 else ''}" if self.detail == "passengers" else ""
        return f"{self.searched}{unit} (you want {self.wanted})"


def latest_search(context: dict[str, object]) -> Search | None:
    """The search the environment recorded in ``booking_context["search"]`` (None: no search yet)."""
    match = _SEARCH_CONTEXT.match(str(context.get("search", "")))
    if match is None:
        return None
    return Search(match[1], match[2], match[3], match[4], int(match[5]), int(match[6]))


def superseded(search: Search, state: ConversationState, today: date) -> bool:
    """Whether the user's latest message states a cabin, party size or date other than the search's: the search
    in the booking context is then older than that message (after a search that found nothing, the agent asks
    again before it searches)."""
    text = next((m.text for m in reversed(state.history) if m.role == "user"), "")
    stated = {"cabin": parse_cabin(text.lower()), "passengers": parse_passengers(text.lower()),
              "date": parse_date(text, today)}
    return any(value is not None and value != getattr(search, key) for key, value in stated.items())


def pending_search(state: ConversationState, today: date) -> Search | None:
    """The latest search, unless the user's latest message has changed one of its details since (None)."""
    search = latest_search(state.booking_context)
    return None if search is None or superseded(search, state, today) else search


def search_mismatches(objective: Objective, search: Search) -> list[Mismatch]:
    """The details of ``search`` that the objective does not accept (``Objective.detail_matches``: a date within
    its flexibility passes), in :data:`CHECKED_DETAILS` order."""
    wanted = {"passengers": objective.passengers, "cabin": objective.cabin, "date": objective.date}
    return [Mismatch(key, getattr(search, key), wanted[key]) for key in CHECKED_DETAILS
            if not objective.detail_matches(key, getattr(search, key))]


def untried_dates(state: ConversationState, today: date) -> list[str]:
    """The dates within the objective's ``flexible_days`` (nearest first, none before tomorrow) that neither a
    user message nor the latest search has tried."""
    objective = state.objective
    tried = {parse_date(m.text, today) for m in state.history if m.role == "user"}
    if (search := latest_search(state.booking_context)) is not None:
        tried.add(search.date)
    base = date.fromisoformat(objective.date)
    offsets = sorted(range(-objective.flexible_days, objective.flexible_days + 1), key=abs)
    candidates = ((base + timedelta(days=offset)).isoformat() for offset in offsets)
    return [day for day in candidates if day not in tried and day > today.isoformat()]


def goal_check_note(state: ConversationState, today: date) -> str:
    """The note for the state's booking context line: "not your goal: ..." after a search that assumed a detail,
    "no flights: ..." after a matching search that found nothing, else ""."""
    search = pending_search(state, today)
    if search is None:
        return ""
    if mismatches := search_mismatches(state.objective, search):
        return "not your goal: " + ", ".join(m.describe() for m in mismatches)
    if search.count == 0:
        dates = untried_dates(state, today)
        return f"no flights: dates you could still try {', '.join(dates)}" if dates else \
            "no flights: no other date fits your goal"
    return ""
