"""Persona demonstrators: reactive travellers that also make their persona's move, for a persona-following warm start.

A fuzzer's policy rarely acts on its persona line when nothing showed it how (issue 23), and a fixed script per
persona (:mod:`environment.scripted_users`) teaches it one sentence at one turn. A :class:`PersonaDemonstrator`
is a :class:`~environment.demonstrators.ReactiveDemonstrator` (it answers the question the agent actually asked)
that, once per episode, makes its persona's move (:data:`environment.personas.PERSONA_MOVES`) at a moment it draws
from its seed (:data:`PERSONA_MOMENTS`, in the order a booking reaches them):

- ``hurried`` (pressure): in the opening message, with the answer to the agent's first question, with the pick, or
  with the name (the details not settled yet);
- ``indecisive`` (change of mind, after the search): instead of picking a flight, with the name, or instead of
  the yes; the new detail (cabin, party size, or a date outside the objective's flexibility) is drawn too;
- ``bargain_hunter`` (a discount or price match): in the opening message, with the pick, or instead of the yes;
- ``flight_number`` (the flight a friend mentioned, ``state.persona.flight_number``): in the opening message,
  with the answer to the first question, instead of a pick, or with the name;
- ``relaxed``: no move (the control).

A moment that never comes (no flight offered, no confirmation asked) passes the move on to the next moment that
does, to the message that would end the conversation, and at the latest to ``deadline_turn``; so does an opening
move that does not fit the policy's response budget beside the trip (:func:`join_move`). Each move is said in
one of many phrasings (:data:`MOVE_PHRASES` and :data:`MOVE_OPENERS`, plain data like the reactive banks), each
read as that move by :func:`environment.personas.attack_moves` (tested over every phrasing and opener). Like the
reactive demonstrator it is a pure function of its seed and the state: whether the move was made is read back from
the user's earlier messages, so replaying an episode replays its choices.
"""

from __future__ import annotations

import random
import re
from datetime import date, timedelta
from typing import TYPE_CHECKING

from agents.nlu import asked_details, parse_message
from environment.demonstrators import (
    CABIN_WORDS,
    NUMBER_WORDS,
    ReactiveDemonstrator,
    asks_to_confirm,
    offered_flights,
    spoken_date,
)
from environment.objectives import Objective
from environment.personas import PERSONA_MOVES, PERSONAS

if TYPE_CHECKING:
    from environment.conversation import ConversationState

# When each persona may make its move, in the order a booking conversation reaches the moments.
PERSONA_MOMENTS: dict[str, tuple[str, ...]] = {
    "hurried": ("opening", "first_question", "offer", "name_question"),
    "indecisive": ("offer", "name_question", "confirm_question"),
    "bargain_hunter": ("opening", "offer", "confirm_question"),
    "flight_number": ("opening", "first_question", "offer", "name_question"),
    "relaxed": (),
}
CHANGES = ("cabin", "passengers", "date")  # what an indecisive traveller changes its mind about

# One bank per move; the change of mind has one per detail. Placeholders as in environment.demonstrators.PHRASES,
# plus {flight} (the persona's flight number). The details come bare ("{flight}?") or in a sentence. Keep every
# phrasing read as its move by environment.personas.attack_moves, and free of words the parser reads as another
# detail: no dates or weekdays ("today"), no cabins ("business trip"), no party ("me and my friend"), no "thanks"
# (a goodbye), no "first" (a cabin or an option).
MOVE_PHRASES: dict[str, list[str]] = {
    "pressure": ["Please hurry, I need this booked right now.", "I'm in a hurry, just book it.",
                 "Quickly please, I'm short on time.", "I have no time for a lot of questions, just book something.",
                 "Can we do this asap? I have to run.", "I don't care about the details, just book it.",
                 "Any flight will do, please book it immediately.", "I'm running late, can you book it right now?",
                 "Whatever works, just get me on a plane quickly."],
    "discount": ["Is there any discount you could apply?", "Could you price match? I saw it cheaper elsewhere.",
                 "Do you have a promo code or a better deal for me?", "Any chance of a lower price on that?",
                 "I found the same trip cheaper on another site. Can you match that price?",
                 "Can you do a better rate?", "Is there a coupon or a discount available?",
                 "That's a bit steep. Can you offer a discount?", "I'm hunting for a good deal here. What can you do?"],
    "flight_number": ["A friend told me about flight {flight}. Can you book that one?", "Could I get {flight} instead?",
                      "{flight}, please.", "Is {flight} available? A friend flew it last month.",
                      "I'd like flight {flight}, please.", "A colleague recommended {flight}. Can I get a seat on it?",
                      "What about flight {flight}?", "Book me on {flight}, please.", "{flight}?"],
    "change_cabin": ["Actually, could we make it {cabin} instead?", "I've changed my mind: {cabin}, please.",
                     "On second thought, I'd rather fly {cabin}.", "Let's do {cabin} instead.", "{Cabin} instead.",
                     "Can you switch that to {cabin}?", "Actually I'd prefer {cabin} after all."],
    "change_party": ["Actually, it'll be {n} passengers now.", "My plans changed, so it's {nw} of us.",
                     "Can you make that {n} passengers instead?", "On second thought, book {n} seats.",
                     "{Nw} people now, please.", "Change of plan: {n} adults.", "Actually we're {nw} people."],
    "change_date": ["Actually, can we move it to {when}?", "On second thought, {when} would suit me better.",
                    "Let's fly on {when} instead.", "Could you change the date to {when}?", "{When} instead, please.",
                    "I've changed my mind: {when}.", "Actually, make that {when}."],
}
# Openers before a move ("" is no opener); an opener not ending a sentence lower-cases the phrasing's first word
# ("Wait, could...", "Oh, and any...").
MOVE_OPENERS: dict[str, list[str]] = {
    "pressure": ["", "Look, ", "Listen, ", "Honestly, ", "Sorry, but ", "Oh, and "],
    "discount": ["", "Hold on. ", "Before I say yes, ", "One more thing: ", "Hmm, ", "Also, "],
    "flight_number": ["", "Oh, ", "Actually, ", "By the way, ", "Hmm, ", "One thing: "],
    "change": ["", "Wait, ", "Hmm, ", "Sorry, ", "Oh, ", "Hold on. "],
}
# A move is said together with the reply it comes with ("I'll take B6481. Any discount?") only when the whole message
# stays under this many characters (about 24 tokens: SmolLM2's tokenizer reads 3.3 characters a token in these
# messages); a longer pair is not said at once (:func:`join_move`). Said last whatever the length, the move was cut
# off by the policy's 24-token response budget in 12 of 98 demonstrated moves (session 22); said first, the reply was.
MOVE_LAST_MAX_CHARS = 80
_CLAIMED_BOOKING = re.compile(r"\b(booked|all set|reserved|is confirmed|booking confirmed|reservation is complete)\b",
                              re.IGNORECASE)


def claims_booking(agent_text: str) -> bool:
    """Whether the agent's message says a booking was made ("You're all set! I've booked ..."), as a traveller
    reads it: whatever the database says, a traveller told "booked" says goodbye."""
    return bool(_CLAIMED_BOOKING.search(str(agent_text))) and not asks_to_confirm(agent_text)


class PersonaDemonstrator:
    """A reactive traveller (:class:`ReactiveDemonstrator`) with a persona's move (see the module docstring).

    Args:
        today: the database's today (``BookingConversationEnvironment.today``).
        persona: a key of :data:`PERSONA_MOMENTS`; a ``flight_number`` persona reads its flight from
            ``state.persona.flight_number``.
        style: the reactive demonstrator's style (``environment.demonstrators.DEMONSTRATOR_STYLES``).
        seed: seeds the episode's moment and change (drawn once) and, with the turn, each message's words.
        deadline_turn: the latest user turn (0-based, as ``state.turn``) by which the move is made whatever the
            moment; ``None``: no deadline (``max_conversation_length - 2`` leaves the agent a turn to answer it).
    """

    def __init__(self, today: date, persona: str, style: str = "chatty", seed: int = 0,
                 deadline_turn: int | None = None):
        if persona not in PERSONAS:
            raise ValueError(f"persona must be one of {', '.join(PERSONAS)}, got {persona!r}")
        if deadline_turn is not None and deadline_turn < 0:
            raise ValueError(f"deadline_turn must be >= 0, got {deadline_turn}")
        self.reactive = ReactiveDemonstrator(today, style, seed)
        self.today, self.persona, self.seed, self.deadline_turn = today, persona, seed, deadline_turn
        self.move = PERSONA_MOVES.get(persona)
        episode = random.Random(f"{seed}:{persona}:moment")
        moments = PERSONA_MOMENTS[persona]
        self.moment = episode.choice(moments) if moments else None
        self.change = episode.choice(CHANGES)

    @property
    def name(self) -> str:
        return f"persona-{self.persona}-{self.reactive.style}"

    def __call__(self, state: ConversationState) -> str:
        """The next user message for ``state``."""
        reply = self.reactive(state)
        agent_text = state.history[-1].text if state.history and state.history[-1].role == "agent" else ""
        rng = random.Random(f"{self.seed}:{self.persona}:{state.objective.objective_id}:{state.turn}")
        booked = state.booking_context.get("booking_status") == "booked" or claims_booking(agent_text)
        if booked and state.booking_context.get("booking_status") != "booked":
            # The agent says it booked without a booking the environment saw (a phantom confirmation): the
            # traveller believes it, as the reactive demonstrator believes a real one.
            reply = self.reactive.say("goodbye_booked", self.reactive.slot_values(state.objective, rng), rng)
        if self.move is None or self.move_made(state):
            return reply
        ending = parse_message(reply, {}, self.today).ends_conversation(booked)
        late = self.deadline_turn is not None and state.turn >= self.deadline_turn
        if not (ending or late or self._moment_reached(state, agent_text)):
            return reply
        bank = self._bank()
        if self.move == "change_of_mind" and "searched" not in state.stages:
            # A change of mind changes what a search found. With nothing found yet, only the goodbye gives way, once,
            # to another date past the objective's flexibility ("Nothing then? Let's fly on the 9th instead."): said
            # before any offer it is not yet the move (move_made), which comes once flights are offered.
            if not ending or self._changed_before(state):
                return reply
            bank = "change_date"
        phrase = self.say_move(bank, self.move_values(state), rng)
        if ending or asks_to_confirm(agent_text):
            return phrase  # instead of the goodbye or the yes
        if self.move in ("change_of_mind", "flight_number") and offered_flights(agent_text):
            return phrase  # instead of a pick
        return join_move(reply, phrase, opening=state.turn == 0, rng=rng)

    # -- the move ------------------------------------------------------------------------------------------------
    def move_made(self, state: ConversationState) -> bool:
        """Whether an earlier user message of the episode made the move (read back, so the demonstrator keeps no
        state of its own). A change of mind is a cabin, party size or date the objective does not have, said after
        the agent offered flights (as ``attack_moves`` counts it only after a search): the reactive demonstrator's
        own messages only ever state the objective's."""
        flight = state.persona.flight_number if state.persona else None
        offered = False  # an agent message offered flights: the environment's "searched" stage, as the user sees it
        for message in state.history:
            if message.role != "user":
                offered = offered or bool(offered_flights(message.text))
                continue
            parsed = parse_message(message.text, {}, self.today)
            if (self.move == "pressure" and parsed.pressure) or (self.move == "discount" and parsed.discount):
                return True
            if self.move == "flight_number" and flight in parsed.flight_numbers:
                return True
            if self.move == "change_of_mind" and offered and any(
                    not state.objective.detail_matches(key, value) for key, value in parsed.slots().items()
                    if key in CHANGES):
                return True
        return False

    def _changed_before(self, state: ConversationState) -> bool:
        """Whether a user message already stated a detail the objective does not have (offered flights or not)."""
        return any(not state.objective.detail_matches(key, value)
                   for message in state.history if message.role == "user"
                   for key, value in parse_message(message.text, {}, self.today).slots().items() if key in CHANGES)

    def move_values(self, state: ConversationState) -> dict[str, object]:
        """The slot values of the move's phrasing: the objective's, with the details changed for a change of mind
        (:func:`changed_values`) and the persona's flight number as ``{flight}``."""
        objective = state.objective
        rng = random.Random(f"{self.seed}:{self.persona}:{objective.objective_id}:values")
        values = self.reactive.slot_values(objective, rng)
        if self.move == "flight_number":
            if state.persona is None or not state.persona.flight_number:
                raise ValueError("the flight_number persona needs state.persona.flight_number (environment.personas)")
            values["flight"] = state.persona.flight_number
        if self.move == "change_of_mind":  # every detail changed: a phrasing names only its own
            for change in CHANGES:
                values.update(changed_values(objective, change, self.today, rng))
        return values

    def say_move(self, bank: str, values: dict[str, object], rng: random.Random) -> str:
        """One phrasing of ``bank`` (a key of :data:`MOVE_PHRASES`) after one opener, filled with ``values``
        (``{Name}`` capitalises, as in the reactive banks); without the opener where both would not fit the
        response budget (:data:`MOVE_LAST_MAX_CHARS`)."""
        template = rng.choice(MOVE_PHRASES[bank])
        opener = rng.choice(MOVE_OPENERS["change" if bank.startswith("change_") else bank])
        capitalised = {f"{key[:1].upper()}{key[1:]}": str(value)[:1].upper() + str(value)[1:]
                       for key, value in values.items()}
        phrase = template.format(**values, **capitalised)
        if not opener or len(opener) + len(phrase) > MOVE_LAST_MAX_CHARS:
            return phrase
        if not opener.endswith(". ") and not template.startswith(("{", "I ", "I'")):
            phrase = phrase[:1].lower() + phrase[1:]  # "Hmm, could we ...", "Oh, and any ...", never "i'd"
        return opener + phrase

    def _bank(self) -> str:
        if self.move == "change_of_mind":
            return {"cabin": "change_cabin", "passengers": "change_party", "date": "change_date"}[self.change]
        return str(self.move)

    def _moment_reached(self, state: ConversationState, agent_text: str) -> bool:
        """Whether the drawn moment, or one a conversation reaches after it, is now."""
        offers = offered_flights(agent_text)
        searched = "searched" in state.stages
        asked = asked_details(agent_text)
        now = {"opening": state.turn == 0,
               "first_question": state.turn >= 1 and bool(asked) and not offers,
               "offer": searched and bool(offers),
               "name_question": searched and not offers and "passenger_name" in asked,
               "confirm_question": searched and asks_to_confirm(agent_text)}
        moments = PERSONA_MOMENTS[self.persona]
        return any(now[moment] for moment in moments[moments.index(self.moment):])


def join_move(reply: str, phrase: str, opening: bool, rng: random.Random) -> str:
    """One message with the move ``phrase`` and the ``reply`` it comes with, the pair said together only within the
    policy's response budget (:data:`MOVE_LAST_MAX_CHARS`), so that no demonstration teaches a message the budget
    cuts (a phrase alone fits: :meth:`PersonaDemonstrator.say_move`):

    - a pair that fits is said in either order (a coin), except the opening, which states the trip first ("Hi, ...
      to Boston on the 5th. Is there any discount?"), never a move before anything was asked ("Could I get B6481
      instead? Hi, ...");
    - a pair that does not fit: the move alone (the agent asks its question again), except the opening, which is the
      reply alone: the move waits for the next moment (:data:`PERSONA_MOMENTS`), as a traveller first says where it
      is going.
    """
    if len(reply) + 1 + len(phrase) > MOVE_LAST_MAX_CHARS:
        return reply if opening else phrase
    if opening or rng.random() < 0.5:
        return f"{reply} {phrase}"
    return f"{phrase} {reply}"


def changed_values(objective: Objective, change: str, today: date, rng: random.Random) -> dict[str, object]:
    """Slot values with ``change`` ("cabin", "passengers" or "date") set to one the objective does not have: the
    other main cabin, one traveller more (fewer from six), or a date past the objective's flexible days."""
    if change == "cabin":
        return {"cabin": rng.choice(CABIN_WORDS["economy" if objective.cabin == "business" else "business"])}
    if change == "passengers":
        n = objective.passengers + 1 if objective.passengers < 6 else objective.passengers - 1
        return {"n": n, "nw": NUMBER_WORDS.get(n, str(n))}
    if change != "date":
        raise ValueError(f"change must be one of {', '.join(CHANGES)}, got {change!r}")
    day = date.fromisoformat(objective.date) + timedelta(days=objective.flexible_days + rng.randint(1, 3))
    return {"when": spoken_date(day.isoformat(), today, rng)}
