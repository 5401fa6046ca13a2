"""Reactive demonstrators: scripted travellers that answer what the agent actually asked, for warm-start data.

A fixed, turn-indexed script teaches a policy to recite the script (issue 22: a model fine-tuned on the two scripts
of :mod:`environment.scripted_users` repeated "Going to San Francisco." six times). A demonstrator is instead a
function ``state -> next user message`` that reads the agent's latest message with the same readers the booking
agent and the rewards use (:func:`agents.nlu.asked_details`), and the booking context the environment keeps from
the agent's tool calls, and then, in this order:

1. after a confirmed booking, says goodbye;
2. when the agent searched with a detail the objective does not have (it assumed one passenger, economy, ...),
   corrects it ("Actually it's 3 of us");
3. when the agent's last search found nothing: proposes another date within the objective's ``flexible_days``,
   or else ends politely (the right ending on an infeasible objective; see ``rewards.is_walking_away``);
4. when the agent asks to confirm a booking, confirms;
5. when the agent offers flights, picks one that meets the objective (:meth:`Objective.booking_matches`, the one
   home of that rule: within budget for a budget objective);
6. when the agent asks for details, answers exactly those (route, date, cabin, party size, name), and in its
   first message, by style, also the details an agent would assume wrongly (a party above one, a cabin other
   than economy), as a group traveller does: the party first, most often inside the trip sentence ("Three of us
   flying from ..."), so that a reply cut at the policy's response budget still carries it;
7. when the agent asks which flight without listing them again, picks from the latest list;
8. otherwise restates the trip.

Every answer is drawn from several phrasings per slot (:data:`PHRASES`, plain data: extend it for your domain),
with a random stream seeded by (seed, turn), so a demonstrator is a pure function of its seed and the state, and
no slot has one sentence. Every phrasing is one the shared parser reads as the intended detail (tested).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from agents.nlu import asked_details, month_day
from environment.goal_check import Search, pending_search, search_mismatches, untried_dates
from environment.objectives import Objective

if TYPE_CHECKING:
    from environment.conversation import ConversationState

NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}
ORDINAL_WORDS = ["first", "second", "third"]

# One list of phrasings per move. Placeholders: {oc}/{dc} cities, {when} a written date, {cabin} cabin words, {n}
# party size in digits, {nw} in words, {name}, {ordinal} "first"/"second"/"third", {k} 1-3, {flight} a number.
# Keep each phrasing one that agents.nlu.parse_message reads as the move (tests/test_demonstrations.py checks).
PHRASES: dict[str, list[str]] = {
    "greeting": ["Hi!", "Hello.", "Hi there,", "Good morning!", "Hey,", "Hello there."],
    "trip": ["I'd like to fly from {oc} to {dc} on {when}.", "From {oc} to {dc}, on {when}.",
             "I need a flight from {oc} to {dc} on {when}.", "Flying from {oc} to {dc} on {when}, please.",
             "{When}, from {oc} to {dc}.", "Looking to go from {oc} to {dc} on {when}.",
             "I'm travelling from {oc} to {dc} on {when}."],
    # The trip with a party above one, the party first: an opening that says both stays within a short reply budget.
    "trip_party": ["{Nw} of us flying from {oc} to {dc} on {when}.",
                   "We're {nw} people going from {oc} to {dc} on {when}.",
                   "I need {n} seats from {oc} to {dc} on {when}.",
                   "{n} passengers from {oc} to {dc} on {when}, please.",
                   "There are {nw} of us going from {oc} to {dc} on {when}.", "{Nw} travellers, {oc} to {dc}, {when}.",
                   "Booking for {n} people from {oc} to {dc} on {when}.", "{n} adults flying {oc} to {dc} on {when}.",
                   "{Nw} of us need to get from {oc} to {dc} on {when}.",
                   "Flying from {oc} to {dc} on {when}, {n} adults."],
    "route": ["From {oc} to {dc}.", "I'm flying from {oc} to {dc}.", "Leaving from {oc}, going to {dc}.",
              "I need to get from {oc} to {dc}.", "Out of {oc}, heading to {dc}."],
    "origin": ["From {oc}.", "I'm leaving from {oc}.", "Departing from {oc}.", "Flying out of {oc}."],
    "destination": ["To {dc}.", "Going to {dc}.", "I'm heading to {dc}.", "Flying into {dc}."],
    "date": ["On {when}.", "{When}.", "I'd like to go on {when}.", "The date is {when}.", "Leaving {when}.",
             "{When}, please."],
    "cabin": ["{Cabin}, please.", "{Cabin}.", "I'd like {cabin}.", "In {cabin}, please.", "We'll fly {cabin}."],
    "party_one": ["Just me.", "Only me.", "Just myself.", "One passenger.", "It's just me travelling."],
    "party_many": ["{n} passengers.", "There are {nw} of us.", "{n} adults.", "{Nw} people.",
                   "It's for {n} travellers.", "{Nw} passengers, please."],
    "name": ["{name}.", "My name is {name}.", "The name is {name}.", "It's {name}.", "Put it under {name}.",
             "{name}, please.", "The lead passenger is {name}."],
    # A name nobody asked for yet needs its trigger words: a bare name only answers a name question.
    "name_unasked": ["My name is {name}.", "The name is {name}.", "Put it under {name}.", "This is {name}.",
                     "The lead passenger is {name}.", "Book it under {name}."],
    "pick_index": ["The {ordinal} one, please.", "Option {k}.", "I'll take the {ordinal} one.", "Number {k}, please.",
                   "Let's go with the {ordinal} flight."],
    "pick_flight": ["{flight}, please.", "I'll take {flight}.", "Flight {flight} works for me.",
                    "Let's go with {flight}."],
    "pick_cheapest": ["The cheapest one, please.", "I'll take the cheapest option.", "Whichever is cheapest."],
    "confirm": ["Yes, please book it.", "Yes, go ahead.", "Sounds good, book it.", "Yep, please confirm.",
                "Yes please.", "That's correct, go ahead.", "Please book it."],
    "correct_party": ["Actually it's {nw} of us.", "Sorry, it's for {n} passengers.", "We're {n} people, actually.",
                      "That should be {n} adults."],
    "correct_cabin": ["Actually, I'd like {cabin}.", "Could you make that {cabin}?", "I need {cabin}, please."],
    "correct_date": ["Sorry, I meant {when}.", "The date should be {when}.", "Actually, I'm flying on {when}."],
    "other_date": ["Could you try {when} instead?", "What about {when}?", "{When} would also work for me."],
    "goodbye_booked": ["Thank you, goodbye!", "Thanks so much, bye!", "Perfect, thanks. Goodbye!",
                       "Great, that's all. Thank you!", "Thanks for your help, have a nice day!"],
    "goodbye_unavailable": ["That's a shame. Thanks for checking, goodbye!", "No worries, I'll look elsewhere. Bye.",
                            "Never mind then. Thank you, goodbye.", "I see. Thanks anyway, bye!",
                            "Alright, I'll pass. Thanks for your help, goodbye."],
}
CORRECTION_MOVES = {"passengers": "party", "cabin": "cabin", "date": "date"}  # goal_check detail -> phrase bank
CABIN_WORDS = {"economy": ["economy", "economy class", "coach"], "business": ["business", "business class"],
               "first": ["first class"]}


# What makes a user turn one that demonstrations rarely hold (``turn_situation``; ``persona_move`` is labelled by
# training/demonstrations.py, which sees the move made). The warm start can repeat such rows
# (``warm_start.repeat_situations``): in 469 rows of 100 episodes, 28 correct the agent and 59 open on such a goal.
SITUATIONS = ("correction", "unusual_opening", "persona_move")


def turn_situation(state: ConversationState, today: date) -> str:
    """``"correction"`` when the agent's latest search assumed a detail the objective does not have (what the goal
    check names "not your goal"), ``"unusual_opening"`` for the first message on an objective with a detail an
    agent would assume wrongly (:data:`ASSUMED`), else ``""``."""
    search = pending_search(state, today)
    if search is not None and search_mismatches(state.objective, search):
        return "correction"
    if state.turn == 0 and unusual_details(state.objective):
        return "unusual_opening"
    return ""


def unusual_details(objective: Objective) -> dict[str, object]:
    """The objective's details an agent would assume wrongly when not told (:data:`ASSUMED`: 1 passenger, economy)."""
    return {key: getattr(objective, key) for key, assumed in ASSUMED.items() if getattr(objective, key) != assumed}


@dataclass(frozen=True)
class DemonstratorStyle:
    """How a demonstrator talks: chances to open with a greeting, to volunteer details nobody asked for yet, and
    to say in its first message the details an agent would otherwise assume wrongly (``unusual``: a party above
    one, a cabin other than economy; a real group traveller says "for the four of us" before being asked)."""

    greeting: float
    volunteer: float
    unusual: float


# brief: answers what is asked, little more; chatty: greets, offers cabin, party and name early; stepwise: never
# ahead of the agent's questions (the agent assumes one passenger in economy, and it corrects the agent).
DEMONSTRATOR_STYLES: dict[str, DemonstratorStyle] = {
    "brief": DemonstratorStyle(greeting=0.1, volunteer=0.15, unusual=0.9),
    "chatty": DemonstratorStyle(greeting=0.8, volunteer=0.6, unusual=1.0),
    "stepwise": DemonstratorStyle(greeting=0.4, volunteer=0.0, unusual=0.0),
}
TRIP_WITH_PARTY = 0.75  # chance that the trip and a party above one are one sentence ("Three of us flying from ...")
ASSUMED = {"passengers": 1, "cabin": "economy"}  # what an agent takes for granted when it is not told

_FLIGHT_NUMBER = re.compile(r"\b[A-Z][A-Z0-9]\d{2,4}\b")
_MONEY = re.compile(r"(?:\$|USD\s?)\s?(\d[\d,]*(?:\.\d+)?)|(\d[\d,]*(?:\.\d+)?)\s*dollars")
_RELATIVE_AFTER_ON = re.compile(r"\b([Oo])n (tomorrow|in \d+ days)\b")  # "on {when}", a relative date: no "on"
_CONFIRM_QUESTION = re.compile(r"\b(book|confirm|go ahead|proceed|reserve)", re.IGNORECASE)


@dataclass(frozen=True)
class Offer:
    """A flight the agent offered: its number and per-person price (``None`` when the line shows none)."""

    flight_number: str
    price: float | None


def offered_flights(agent_text: str) -> list[Offer]:
    """The flights an agent message lists, in its order: per line, the first flight number and amount of money."""
    offers: dict[str, Offer] = {}
    for line in str(agent_text).splitlines():
        numbers = _FLIGHT_NUMBER.findall(line)
        if not numbers or numbers[0] in offers:
            continue
        money = _MONEY.search(line)
        price = float((money[1] or money[2]).replace(",", "")) if money else None
        offers[numbers[0]] = Offer(numbers[0], price)
    return list(offers.values())


def asks_to_confirm(agent_text: str) -> bool:
    """Whether the agent's message asks a yes/no question about booking ("Shall I book it?"), not for a detail
    ("Could you share the full name for the booking?" asks the name)."""
    # Lines split too: an itinerary block ("- Passengers: 2 ... Shall I go ahead?") is no question about its lines.
    questions = [s for s in re.split(r"(?<=[.?!])\s|\n", str(agent_text)) if s.strip().endswith("?")]
    return any(_CONFIRM_QUESTION.search(question) and not asked_details(question) for question in questions)


def spoken_date(iso: str, today: date, rng: random.Random) -> str:
    """``iso`` as a traveller writes it: "March 3", "3 March", "Tuesday, March 3", "03/03", "tomorrow", ..."""
    day = date.fromisoformat(iso)
    suffix = "th" if 11 <= day.day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day.day % 10, "th")
    forms = [month_day(day), f"{day:%b} {day.day}", f"{day.day} {day:%B}", f"{day:%B} {day.day}{suffix}",
             f"{day:%A}, {day:%B} {day.day}", iso, f"{day.month:02d}/{day.day:02d}"]
    ahead = (day - today).days
    if ahead == 1:
        forms.append("tomorrow")
    elif 2 <= ahead <= 9:
        forms.append(f"in {ahead} days")
    return rng.choice(forms)


class ReactiveDemonstrator:
    """A cooperative traveller driven by the agent's latest message (see the module docstring).

    Args:
        today: the database's today (``BookingConversationEnvironment.today``), for relative dates.
        style: a key of :data:`DEMONSTRATOR_STYLES`.
        seed: with the turn, seeds each message's draw.
        phrases: the phrasing banks (default :data:`PHRASES`); a user's own may override any key.
    """

    def __init__(self, today: date, style: str = "chatty", seed: int = 0,
                 phrases: dict[str, list[str]] | None = None):
        if style not in DEMONSTRATOR_STYLES:
            raise ValueError(f"style must be one of {', '.join(DEMONSTRATOR_STYLES)}, got {style!r}")
        unknown = sorted(set(phrases or {}) - set(PHRASES))
        if unknown:
            raise ValueError(f"phrases: unknown move(s) {', '.join(unknown)}; known: {', '.join(PHRASES)}")
        empty = sorted(move for move, options in (phrases or {}).items() if not options)
        if empty:
            raise ValueError(f"phrases: move(s) {', '.join(empty)} need at least one phrasing")
        self.today, self.style, self.seed = today, style, seed
        self.settings = DEMONSTRATOR_STYLES[style]
        self.phrases = {**PHRASES, **(phrases or {})}

    @property
    def name(self) -> str:
        return f"reactive-{self.style}"

    def __call__(self, state: ConversationState) -> str:
        """The next user message for ``state``."""
        rng = random.Random(f"{self.seed}:{self.style}:{state.objective.objective_id}:{state.turn}")
        objective, context = state.objective, state.booking_context
        agent_text = state.history[-1].text if state.history and state.history[-1].role == "agent" else ""
        values = self.slot_values(objective, rng)
        if context.get("booking_status") == "booked":
            return self.say("goodbye_booked", values, rng)
        search = pending_search(state, self.today)  # None also when the user changed a detail since
        if search is not None and (mismatches := search_mismatches(objective, search)):
            return self.say(f"correct_{CORRECTION_MOVES[mismatches[0].detail]}", values, rng)
        offers = offered_flights(agent_text)
        if search is not None and search.count == 0 and not offers:
            other = next(iter(untried_dates(state, self.today)), None)
            if other is None:
                return self.say("goodbye_unavailable", values, rng)
            return self.say("other_date", {**values, "when": spoken_date(other, self.today, rng)}, rng)
        if asks_to_confirm(agent_text):
            return self.say("confirm", values, rng)
        asked = asked_details(agent_text)
        if offers:
            # A list of flights is a question about which one ("departs"/"arrives" in its lines are no question
            # about the route); a name asked beside it is answered too.
            pick = self._pick(objective, search, offers, values, rng)
            return f"{pick} {self.say('name', values, rng)}" if "passenger_name" in asked else pick
        if asked:
            return self._answer(asked, state, values, rng, opening=state.turn == 0)
        if search is not None and search.count and (earlier := _latest_offers(state)):
            return self._pick(objective, search, earlier, values, rng)  # "Which of these would you like?"
        return self._answer(frozenset({"origin", "destination", "date", "cabin", "passengers", "passenger_name"}),
                            state, values, rng, opening=state.turn == 0)

    # -- moves ---------------------------------------------------------------------------------------------------
    def _answer(self, asked: frozenset[str], state: ConversationState, values: dict[str, object],
                rng: random.Random, opening: bool) -> str:
        """Sentences answering the ``asked`` details, maybe with details nobody asked for yet (by style)."""
        wanted = set(asked)
        for extra in ("cabin", "passengers", "passenger_name"):
            if extra not in state.details_given and rng.random() < self.settings.volunteer:
                wanted.add(extra)
        if opening:
            wanted |= {detail for detail in ASSUMED
                       if detail in unusual_details(state.objective) and rng.random() < self.settings.unusual}
        parts = []
        if opening and rng.random() < self.settings.greeting:
            parts.append(rng.choice(self.phrases["greeting"]))
        route = {"origin", "destination"} & wanted
        party_many = "passengers" in wanted and state.objective.passengers > 1
        if route == {"origin", "destination"} and "date" in wanted:
            if party_many and rng.random() < TRIP_WITH_PARTY:
                parts.append(self.say("trip_party", values, rng))
                wanted.discard("passengers")
            else:
                parts.append(self.say("trip", values, rng))
        else:
            if route:
                parts.append(self.say("route" if len(route) == 2 else route.pop(), values, rng))
            if "date" in wanted:
                parts.append(self.say("date", values, rng))
        if "passengers" in wanted:  # before the cabin: a reply cut at the response budget keeps the party
            parts.append(self.say("party_many" if party_many else "party_one", values, rng))
        if "cabin" in wanted:
            parts.append(self.say("cabin", values, rng))
        if "passenger_name" in wanted:
            parts.append(self.say("name" if "passenger_name" in asked else "name_unasked", values, rng))
        return " ".join(parts)

    def _pick(self, objective: Objective, search: Search | None, offers: list[Offer], values: dict[str, object],
              rng: random.Random) -> str:
        """Choose an offered flight whose booking would meet the objective, and say which."""
        passengers = search.passengers if search else objective.passengers
        trip = {"origin": objective.origin, "destination": objective.destination,
                "passenger_name": objective.passenger_name, "date": search.date if search else objective.date,
                "cabin": search.cabin if search else objective.cabin, "passengers": passengers}
        meeting = [index for index, offer in enumerate(offers) if offer.price is not None
                   and objective.booking_matches({**trip, "total_price": offer.price * passengers})]
        if not meeting:  # prices unreadable (or none fits): the agent knows its own fares
            return self.say("pick_cheapest", values, rng)
        index = rng.choice(meeting)
        choice = rng.random()
        if objective.budget is not None and choice < 0.3 and offers[index].price == min(
                o.price for o in offers if o.price is not None):
            return self.say("pick_cheapest", values, rng)
        if choice < 0.6 and index < len(ORDINAL_WORDS) and len(offers) > 1:
            return self.say("pick_index", {**values, "ordinal": ORDINAL_WORDS[index], "k": index + 1}, rng)
        return self.say("pick_flight", {**values, "flight": offers[index].flight_number}, rng)

    # -- words ---------------------------------------------------------------------------------------------------
    def slot_values(self, objective: Objective, rng: random.Random) -> dict[str, object]:
        """The objective's values as the phrasing banks name them (``{oc}``, ``{when}``, ``{n}``, ...), with the
        date and the cabin worded by ``rng``."""
        n = objective.passengers
        values: dict[str, object] = {
            "oc": objective.origin_city, "dc": objective.destination_city, "name": objective.passenger_name,
            "when": spoken_date(objective.date, self.today, rng), "cabin": rng.choice(CABIN_WORDS[objective.cabin]),
            "n": n, "nw": NUMBER_WORDS.get(n, str(n))}
        return values

    def say(self, move: str, values: dict[str, object], rng: random.Random) -> str:
        """One phrasing of ``move`` drawn by ``rng``, filled with ``values`` (capitalised where the bank says
        ``{Name}`` instead of ``{name}``)."""
        text = rng.choice(self.phrases[move])
        capitalised = {f"{key[:1].upper()}{key[1:]}": _capitalise(str(value)) for key, value in values.items()}
        return _RELATIVE_AFTER_ON.sub(_drop_on, text.format(**values, **capitalised))


def _latest_offers(state: ConversationState) -> list[Offer]:
    """The flights of the latest agent message that listed any."""
    for message in reversed(state.history):
        if message.role == "agent" and (offers := offered_flights(message.text)):
            return offers
    return []


def _drop_on(match: re.Match) -> str:
    """"on in 3 days" -> "in 3 days"; "On tomorrow" -> "Tomorrow"."""
    return _capitalise(match[2]) if match[1] == "O" else match[2]


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]
