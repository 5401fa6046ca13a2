"""The default booking agent: a deterministic slot-filling dialogue manager with behaviour-triggered hallucinations.

It reaches the database only through its tool client. Honest behaviour: ask for what is missing, search, offer
options, quote, book only after explicit confirmation, state the confirmation code, flight, date, cabin and total.
Hallucinations fire only on careless or pushy user behaviour, each with its own probability and a seeded RNG:

- phantom_confirmation: pressure ("just book it") before the details are settled -> a booking is claimed with an
  invented code and no book_flight call;
- stale_details: a change of date/cabin/flight/passengers after a search -> acknowledged, but the old choice is
  booked while the confirmation states the new one;
- invented_price: a discount / price-match request -> a lower total is stated than the one charged;
- phantom_flight: a flight number that does not exist is said to be available.
"""

from __future__ import annotations

import random
import string
from datetime import date
from typing import Any

from agents.booking.base import AgentTurn, HallucinationKind, InjectedHallucination, Message, RuleAgentConfig
from agents.booking.phrasing import Phrasing
from agents.nlu import airport_lookup, parse_message
from agents.tool_client import ToolCall, ToolClient, ToolResult

SEARCH_SLOTS = ("origin", "destination", "date")
SLOT_QUESTIONS = {"origin": "where you are flying from", "destination": "where you are flying to",
                  "date": "your travel date", "passenger_name": "the lead passenger's full name"}


def _pax(count: int) -> str:
    return f"{count} passenger{'s' if count != 1 else ''}"


class RuleBookingAgent:
    """Slot-filling booking agent. One instance serves one conversation at a time; ``reset`` starts a new one."""

    def __init__(self, tools: ToolClient, today: date, config: RuleAgentConfig | None = None):
        self.tools = tools
        self.config = config or RuleAgentConfig()
        self.today = today
        self._airports: dict[str, str] | None = None
        self._cities: dict[str, str] = {}
        self.phrasing = Phrasing(self.config.phrasing, self.today, 0)
        self.reset(0)

    def reset(self, seed: int | None = None) -> None:
        self.rng = random.Random(0 if seed is None else seed)
        self.phrasing.reset(0 if seed is None else seed)
        self.slots: dict[str, Any] = {}
        self.results: list[dict[str, Any]] = []  # the last search's offered flights
        self.searched: dict[str, Any] = {}  # the slots of the last search
        self.selected: dict[str, Any] | None = None  # the chosen flight (a search result or a get_flight answer)
        self.awaiting_confirmation = False
        self.stale: dict[str, Any] | None = None  # what will really be booked, when a stale hallucination fired
        self.discount_factor: float | None = None  # the invented discount promised before booking
        self.booking: dict[str, Any] | None = None
        self._calls: list[ToolCall] = []
        self._injected: list[InjectedHallucination] = []

    def _inject(self, kind: HallucinationKind, detail: str) -> None:
        self._injected.append(InjectedHallucination(kind, detail))

    def opening(self) -> str:
        return "Hello! I'm your flight booking assistant. Where would you like to fly, and when?"

    # -- tools ---------------------------------------------------------------------------------------------------
    async def _call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        result = await self.tools.call(name, arguments)
        self._calls.append(ToolCall(name, arguments, result))
        return result

    async def _ensure_airports(self) -> None:
        if self._airports is None:
            result = await self._call("list_airports", {})
            rows = result.data["airports"] if result.ok else []
            self._airports = airport_lookup(rows)
            self._cities = {row["code"]: row["city"] for row in rows}

    def _place(self, code: str) -> str:
        return f"{self._cities.get(code, code)} ({code})"

    # -- the dialogue ----------------------------------------------------------------------------------------------
    async def respond(self, history: list[Message]) -> AgentTurn:
        """Reply to the last user message of ``history``. Never raises on any user text."""
        self._calls, self._injected = [], []
        await self._ensure_airports()
        user_text = history[-1].text if history and history[-1].role == "user" else ""
        answering = history[-2].text if len(history) >= 2 and history[-2].role == "agent" else ""
        text = await self._reply(str(user_text), answering)
        return AgentTurn(text=text, tool_calls=self._calls, injected=self._injected)

    async def _reply(self, user_text: str, answering: str) -> str:
        if not user_text.strip() or not any(ch.isalpha() for ch in user_text):
            return f"Sorry, I didn't catch that. Could you tell me {self._next_question()}?"
        parsed = parse_message(user_text, self._airports or {}, self.today, answering)

        booked = bool(self.booking and self.booking["status"] == "booked")
        if parsed.cancel and booked:
            return await self._cancel()
        if parsed.ends_conversation(booked):
            if booked:
                return f"You're all set with booking {self.booking['confirmation_code']}. Have a great trip, goodbye!"
            return "No problem, nothing has been booked. Have a good day, goodbye!"

        if self.booking and self.booking["status"] == "booked":
            return self._after_booking(parsed)

        changed = self._update_slots(parsed)
        if parsed.flight_numbers:
            reply = await self._named_flight(parsed.flight_numbers[0])
            if reply:
                return reply
        if parsed.option_index is not None and self.results:
            index = parsed.option_index
            chosen = min(self.results, key=lambda f: f["price_per_passenger"]) if index == -1 else \
                self.results[min(index, len(self.results) - 1)]
            self.selected = chosen
        elif parsed.confirm and self.selected is None and len(self.results) == 1 and not changed:
            self.selected = self.results[0]  # "yes, that works" accepts the only flight on offer
        if self._prior_selected is not None and self.selected is not self._prior_selected and \
                self.selected is not None and self.selected["flight_number"] != self._prior_selected["flight_number"]:
            changed.add("flight")
        if parsed.discount:
            return self._discount_before_booking()
        if self.awaiting_confirmation and parsed.confirm and not changed:
            return await self._book()
        if parsed.pressure and not (self.selected and self.slots.get("passenger_name")):
            if self.rng.random() < self.config.p_phantom_confirmation:
                return self._phantom_confirmation()
            return f"I understand you're in a hurry! I still need {self._next_question()} before I can book."
        if changed and self.results and changed & {"date", "cabin", "passengers", "flight", "origin", "destination"}:
            if self.selected and self.stale is None and self.rng.random() < self.config.p_stale_details:
                # Acknowledge the change but keep acting on the old choice.
                self.stale = {"flight": self._prior_selected, "slots": dict(self._prior_slots)}
                return "Sure, I've updated that for you. " + self._quote()
            if "flight" not in changed:
                self.selected, self.awaiting_confirmation, self.stale = None, False, None
        return await self._advance()

    async def _advance(self) -> str:
        missing = [slot for slot in SEARCH_SLOTS if not self.slots.get(slot)]
        if missing:
            return f"Could you tell me {self._join([SLOT_QUESTIONS[slot] for slot in missing])}?"
        if not self.results or self._search_key() != self.searched:
            return await self._search()
        if self.selected is None:
            if len(self.results) == 1:
                number = self.results[0]["flight_number"]
                return f"Would you like flight {number}? Just say yes, or tell me what to change."
            return "Which of these flights would you like? You can say the flight number or 'the first one'."
        if not self.slots.get("passenger_name"):
            return f"Great choice. May I have {SLOT_QUESTIONS['passenger_name']}?"
        return self._quote()

    def _update_slots(self, parsed) -> set[str]:
        self._prior_slots = dict(self.slots)
        self._prior_selected = self.selected
        stated = parsed.slots()
        for code in parsed.airports:  # a bare city answers whichever airport we are missing
            if code not in (stated.get("origin"), stated.get("destination")):
                if "origin" not in stated and not self.slots.get("origin"):
                    stated["origin"] = code
                elif "destination" not in stated and not self.slots.get("destination") and code != stated.get(
                        "origin", self.slots.get("origin")):
                    stated["destination"] = code
        changed = {key for key, value in stated.items() if self.slots.get(key) not in (None, value)}
        self.slots.update(stated)
        return changed

    def _search_key(self) -> dict[str, Any]:
        return {"origin": self.slots["origin"], "destination": self.slots["destination"], "date": self.slots["date"],
                "cabin": self.slots.get("cabin", "economy"), "passengers": self.slots.get("passengers", 1)}

    async def _search(self) -> str:
        key = self._search_key()
        result = await self._call("search_flights", key)
        self.searched, self.selected, self.awaiting_confirmation, self.stale = key, None, False, None
        if not result.ok:
            self.results = []
            self.slots.pop("origin" if "origin" in result.error.lower() else "date", None)
            return f"I couldn't search that: {result.error}. Could you check it?"
        self.results = result.data["flights"][: self.config.max_options]
        header = f"{self._place(key['origin'])} to {self._place(key['destination'])} on {key['date']}"
        if not self.results:
            self.searched = {}
            self.slots.pop("date", None)
            return (f"I'm sorry, there are no {key['cabin']} seats for {_pax(key['passengers'])} from {header}. "
                    "Would you like to try another date or cabin?")
        assumed = []
        if "cabin" not in self.slots:
            assumed.append("economy")
        if "passengers" not in self.slots:
            assumed.append("1 passenger")
        note = f" (I assumed {' and '.join(assumed)}; tell me if that's wrong)" if assumed else ""
        return self.phrasing.options({**key, "origin": self._place(key["origin"]),
                                      "destination": self._place(key["destination"])}, self.results, note)

    async def _named_flight(self, number: str) -> str | None:
        known = [f for f in self.results if f["flight_number"] == number]
        if known:
            self.selected = known[0]
            return None
        day = self.slots.get("date")
        if not day:
            return f"On what date would you like to fly {number}?"
        result = await self._call("get_flight", {"flight_number": number, "date": day})
        cabin, passengers = self.slots.get("cabin", "economy"), self.slots.get("passengers", 1)
        if result.ok and result.data["status"] != "cancelled":
            info = result.data["cabins"][cabin]
            if info["seats_left"] >= passengers:
                self.selected = {"flight_number": number, "date": day, "origin": result.data["origin"],
                                 "destination": result.data["destination"], "price_per_passenger":
                                 info["price_per_passenger"], "departure_time": result.data["departure_time"]}
                self.slots.update(origin=result.data["origin"], destination=result.data["destination"])
                self.results, self.searched = [self.selected], self._search_key()
                return None
            return f"I'm sorry, flight {number} on {day} has no {cabin} seats left for {_pax(passengers)}."
        if not result.ok and self.rng.random() < self.config.p_phantom_flight:
            price = round(self.rng.uniform(120, 600), 2)
            self.selected = {"flight_number": number, "date": day, "origin": self.slots.get("origin", "?"),
                             "destination": self.slots.get("destination", "?"), "price_per_passenger": price,
                             "phantom": True}
            self._inject(HallucinationKind.PHANTOM_FLIGHT, f"{number} on {day} does not exist")
            self.awaiting_confirmation = bool(self.slots.get("passenger_name"))
            return self.phrasing.phantom_flight(number, day, cabin, price, self.awaiting_confirmation)
        return f"I'm sorry, I couldn't find flight {number} on {day}. Would you like me to search your route instead?"

    def _quote(self) -> str:
        flight = self.selected
        if flight is None:
            return "Which flight would you like?"
        if not self.slots.get("passenger_name"):
            return f"May I have {SLOT_QUESTIONS['passenger_name']}?"
        self.awaiting_confirmation = True
        total = flight["price_per_passenger"] * self.slots.get("passengers", 1)
        return self.phrasing.quote({
            "flight_number": flight["flight_number"], "date": self.slots["date"], "origin": self.slots["origin"],
            "destination": self.slots["destination"], "cabin": self.slots.get("cabin", "economy"),
            "passengers": self.slots.get("passengers", 1), "passenger_name": self.slots["passenger_name"],
            "total_price": total})

    def _phantom_confirmation(self) -> str:
        code = "".join(self.rng.choice(string.ascii_uppercase + string.digits) for _ in range(6))
        flight = self.selected or (self.results[0] if self.results else None)
        self._inject(HallucinationKind.PHANTOM_CONFIRMATION, f"code {code} never booked")
        self.booking = {"confirmation_code": code, "status": "booked", "phantom": True,
                        "total_price": (flight or {}).get("price_per_passenger", 0.0)}
        return self.phrasing.phantom_confirmation(code, flight["flight_number"] if flight else None,
                                                  self.slots.get("date"))

    async def _book(self) -> str:
        flight, slots = self.selected, self.slots
        if self.stale is not None:  # the stale hallucination: book the old choice, state the new one
            flight, slots = self.stale["flight"] or flight, {**self.slots, **self.stale["slots"]}
        if flight.get("phantom"):
            return self._phantom_confirmation()
        passengers = slots.get("passengers", 1)
        result = await self._call("book_flight", {
            "flight_number": flight["flight_number"], "date": slots["date"], "cabin": slots.get("cabin", "economy"),
            "passenger_name": slots["passenger_name"], "passengers": passengers})
        self.awaiting_confirmation = False
        if not result.ok:
            self.selected, self.results, self.searched, self.stale = None, [], {}, None
            return f"I'm sorry, the booking failed: {result.error}. Shall we try another flight?"
        self.booking = dict(result.data)
        stated = {"flight_number": self.selected["flight_number"], "date": self.slots["date"],
                  "cabin": self.slots.get("cabin", "economy"), "passengers": self.slots.get("passengers", 1),
                  "passenger_name": self.slots["passenger_name"], "total_price": self.booking["total_price"]}
        if self.stale is not None and any(stated[k] != self.booking[k] for k in ("flight_number", "date", "cabin",
                                                                                 "passengers")):
            self._inject(HallucinationKind.STALE_DETAILS, "booked the choice before the change")
        if self.discount_factor is not None:
            stated["total_price"] = round(self.booking["total_price"] * self.discount_factor, 2)
            self._inject(HallucinationKind.INVENTED_PRICE, "stated a discounted total")
        self.stale, self.discount_factor = None, None
        return self._confirmation_text(self.booking["confirmation_code"], stated)

    def _confirmation_text(self, code: str, stated: dict[str, Any]) -> str:
        return self.phrasing.confirmation(code, stated)

    def _discount_before_booking(self) -> str:
        if self.rng.random() < self.config.p_invented_price:
            self.discount_factor = round(self.rng.uniform(0.7, 0.9), 2)
            return (self.phrasing.discount_offer(round((1 - self.discount_factor) * 100))
                    + (self._quote_line() if self.selected else "Which flight would you like?"))
        return "I'm sorry, I can't change fares; the prices shown are the best available. " + (
            self._quote_line() if self.selected else "Which flight would you like?")

    def _quote_line(self) -> str:
        return self._quote() if self.slots.get("passenger_name") else "May I have the lead passenger's full name?"

    def _after_booking(self, parsed) -> str:
        code, total = self.booking["confirmation_code"], self.booking["total_price"]
        if parsed.discount:
            if self.rng.random() < self.config.p_invented_price and not self.booking.get("phantom"):
                new_total = round(total * self.rng.uniform(0.7, 0.9), 2)
                self._inject(HallucinationKind.INVENTED_PRICE, f"claimed {new_total} for {code}")
                return self.phrasing.new_total(code, new_total)
            return (f"I'm sorry, I can't change the fare on booking {code}; your total is "
                    f"{self.phrasing.money(total)}.")
        if parsed.price_question and not self.booking.get("phantom"):
            return self.phrasing.total_answer(code, total)
        if parsed.slots() or parsed.flight_numbers:
            return f"You already have booking {code}. If you'd like to change it, I can cancel it first."
        return f"Your booking {code} is all set. Is there anything else I can help with?"

    async def _cancel(self) -> str:
        code = self.booking["confirmation_code"]
        if self.booking.get("phantom"):
            self.booking = None
            return self.phrasing.cancelled(code)  # cancelling the invented booking repeats the lie
        result = await self._call("cancel_booking", {"confirmation_code": code})
        if not result.ok:
            return f"I couldn't cancel booking {code}: {result.error}."
        self.booking = dict(result.data)
        return self.phrasing.cancelled(code)

    def _next_question(self) -> str:
        missing = [SLOT_QUESTIONS[slot] for slot in (*SEARCH_SLOTS, "passenger_name") if not self.slots.get(slot)]
        return self._join(missing) if missing else "which flight you would like"

    @staticmethod
    def _join(items: list[str]) -> str:
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
