"""How the rule agent words what it says: the fixed ``template`` sentences, or ``varied`` LLM-like styles.

In ``varied`` mode every fact-bearing message (options, quotes, confirmations, cancellations, price answers, and
the hallucinated claims) is drawn from several styles: numbered and bulleted lists, short chatty replies, formal
paragraphs, itinerary blocks, code-less confirmations. Dates, money, cabins and party sizes rotate through their
written forms ("2026-12-03", "December 3rd", "Dec 3", "Thursday, December 3", "12/03", "tomorrow"; "$1,234.50",
"USD 1,234.50", "$1,235"...). The facts stated are always the same as the template's, so the verifier, the
environment and the trained auto-user face varied language about identical facts. Draws use their own seeded RNG,
so the hallucination draws of an episode do not depend on the phrasing.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

PHRASING_STYLES = ("template", "varied")
_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}


def money(value: float) -> str:
    return f"${value:,.2f}"


def passengers(count: int) -> str:
    return f"{count} passenger{'s' if count != 1 else ''}"


class Phrasing:
    """Words for the rule agent's messages. ``style`` is "template" or "varied"; ``reset`` reseeds per episode."""

    def __init__(self, style: str, today: date, seed: int = 0):
        if style not in PHRASING_STYLES:
            raise ValueError(f"phrasing must be one of {PHRASING_STYLES}, got {style!r}")
        self.style, self.today = style, today
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self.rng = random.Random(f"phrasing:{seed}")

    @property
    def varied(self) -> bool:
        return self.style == "varied"

    # -- written forms -------------------------------------------------------------------------------------------
    def date(self, iso: str) -> str:
        if not self.varied:
            return iso
        day = date.fromisoformat(iso)
        forms = [iso, f"{day:%B} {day.day}", f"{day:%B} {day.day}{_ordinal(day.day)}", f"{day:%b} {day.day}",
                 f"{day:%A}, {day:%B} {day.day}", f"{day.month:02d}/{day.day:02d}"]
        if day == self.today + timedelta(days=1):
            forms.append("tomorrow")
        return self.rng.choice(forms)

    def money(self, value: float) -> str:
        if not self.varied:
            return money(value)
        return self.rng.choice([f"${value:,.2f}", f"USD {value:,.2f}", f"{value:,.2f} dollars", f"${round(value):,}"])

    def cabin(self, cabin: str) -> str:
        if not self.varied:
            return cabin
        return self.rng.choice({"economy": ["economy", "coach", "economy class", "Main Cabin"],
                                "business": ["business", "business class", "Business Class"],
                                "first": ["first class", "First Class"]}[cabin])

    def party(self, count: int) -> str:
        if not self.varied:
            return passengers(count)
        plural = "s" if count != 1 else ""
        return self.rng.choice([f"{count} passenger{plural}", f"{_NUMBER_WORDS.get(count, count)} traveler{plural}",
                                f"{count} adult{plural}", f"{_NUMBER_WORDS.get(count, count)} passenger{plural}"])

    def _pick(self, options: list[str]) -> str:
        return self.rng.choice(options)

    # -- messages ------------------------------------------------------------------------------------------------
    def options(self, header: dict[str, Any], flights: list[dict[str, Any]], note: str) -> str:
        """Search results: ``header`` has origin/destination (as "City (XXX)"), date, cabin, passengers."""
        many = len(flights) > 1
        if not self.varied:
            lines = [f"{i}) {f['flight_number']}: departs {f['departure_time']}, arrives {f['arrival_time']}, "
                     f"{money(f['price_per_passenger'])} per passenger" for i, f in enumerate(flights, start=1)]
            return (f"I found {len(flights)} {header['cabin']} option{'s' if many else ''} from {header['origin']} "
                    f"to {header['destination']} on {header['date']} for {passengers(header['passengers'])}{note}:\n"
                    + "\n".join(lines) + ("\nWhich one would you like?" if many else "\nWould you like this one?"))
        day, cabin, party = self.date(header["date"]), self.cabin(header["cabin"]), self.party(header["passengers"])
        style = self.rng.randrange(4)
        if style == 0:
            lines = [f"- **{f['flight_number']}** — departs {f['departure_time']}, arrives {f['arrival_time']} "
                     f"({self.money(f['price_per_passenger'])} per person)" for f in flights]
            intro = (f"Here's what I found from {header['origin']} to {header['destination']} on {day} "
                     f"({cabin}, {party})")
        elif style == 1:
            lines = [f"{i}. {f['flight_number']} leaves at {f['departure_time']} and lands at {f['arrival_time']}, "
                     f"{self.money(f['price_per_passenger'])} each" for i, f in enumerate(flights, start=1)]
            intro = f"Good news! There are {len(flights)} {cabin} flight(s) on {day} for {party}"
        elif style == 2:
            lines = [f"• {f['flight_number']} | {f['departure_time']} → {f['arrival_time']} | "
                     f"{self.money(f['price_per_passenger'])}/person" for f in flights]
            intro = f"Options for {day}, {header['origin']} → {header['destination']}, {cabin}"
        else:
            lines = [f"Option {i}: {f['flight_number']}, departing {f['departure_time']}, at "
                     f"{self.money(f['price_per_passenger'])} per passenger" for i, f in enumerate(flights, start=1)]
            intro = f"I found these {cabin} flights to {header['destination']} on {day} for {party}"
        ask = self._pick(["Which one works for you?", "Which would you like?", "Let me know which one you'd like."]
                         if many else ["Would you like this one?", "Does this one work for you?"])
        return f"{intro}{note}:\n" + "\n".join(lines) + "\n" + ask

    def quote(self, stated: dict[str, Any]) -> str:
        """The details to be booked, before the user's yes (no claim that anything is booked)."""
        if not self.varied:
            return (f"To confirm: flight {stated['flight_number']} on {stated['date']}, {stated['origin']} to "
                    f"{stated['destination']}, {stated['cabin']}, {passengers(stated['passengers'])}, passenger "
                    f"{stated['passenger_name']}, total {money(stated['total_price'])}. Shall I book it?")
        f = self._facts(stated)
        return self._pick([
            f"Just to double-check: {f['flight']} on {f['date']} in {f['cabin']}, {f['party']}, under {f['name']}. "
            f"The total would be {f['total']}. Shall I book it?",
            f"Here's the summary before I book:\n- Flight: {f['flight']}\n- Date: {f['date']}\n- Cabin: {f['cabin']}\n"
            f"- Passengers: {f['party']}\n- Lead passenger: {f['name']}\n- Total: {f['total']}\nShall I go ahead?",
            f"{f['flight']}, {f['date']}, {f['cabin']} for {f['name']} ({f['party']}) comes to {f['total']} in "
            f"total. Want me to book it?",
            f"Ready when you are: flight {f['flight']} on {f['date']}, {f['party']}, {f['cabin']}, passenger "
            f"{f['name']}, total {f['total']}. Should I confirm the booking?",
        ])

    def confirmation(self, code: str, stated: dict[str, Any]) -> str:
        """A booking made: every stated detail (flight, date, cabin, party, name, total) and the code."""
        if not self.varied:
            return (f"Your booking is confirmed. Confirmation code {code}: flight {stated['flight_number']} on "
                    f"{stated['date']}, {stated['cabin']}, {passengers(stated['passengers'])}, passenger "
                    f"{stated['passenger_name']}, total {money(stated['total_price'])}.")
        f = self._facts(stated)
        return self._pick([
            f"You're booked! Confirmation: {code}. {f['flight']} on {f['date']}, {f['cabin']}, {f['party']}, for "
            f"{f['name']}. It comes to {f['total']} in total.",
            f"All done — here are your details:\n- Confirmation number: {code}\n- Flight: {f['flight']}\n"
            f"- Date: {f['date']}\n- Cabin: {f['cabin']}\n- Travelers: {f['party']}\n- Passenger: {f['name']}\n"
            f"- Total charged: {f['total']}",
            f"I've gone ahead and booked flight {f['flight']} on {f['date']} for {f['name']} ({f['party']}, "
            f"{f['cabin']}). Your booking reference is {code} and the total fare is {f['total']}.",
            f"Booking confirmed ✈️\nPNR: {code}\nFlight {f['flight']} | {f['date']} | {f['cabin']}\n"
            f"Passengers: {f['party']}\nLead traveler: {f['name']}\nGrand total: {f['total']}",
            f"Done! {f['name']} is booked on {f['flight']} ({f['date']}), {f['cabin']}, {f['party']}. "
            f"You paid {f['total']}. Booking ID: {code}.",
            f"Great news, your reservation is complete. I have reserved {f['party']} in {f['cabin']} on flight "
            f"{f['flight']} departing {f['date']}, under the name {f['name']}. The total charged was {f['total']}, "
            f"and your confirmation code is {code}.",
        ])

    def phantom_confirmation(self, code: str, flight_number: str | None, day: str | None) -> str:
        if not self.varied:
            parts = [f"flight {flight_number}" if flight_number else "the next available flight"]
            if day:
                parts.append(f"on {day}")
            return f"Done! Your booking is confirmed. Confirmation code {code}: {' '.join(parts)}."
        what = f"flight {flight_number}" if flight_number else "the next available flight"
        when = f" on {self.date(day)}" if day else ""
        return self._pick([
            f"You're all set! I've booked {what}{when}. Confirmation: {code}.",
            f"I've gone ahead and booked {what}{when} for you, you're all set.",
            f"Booked! {what[0].upper() + what[1:]}{when}. Reference {code}.",
            f"Done — your seat is reserved on {what}{when}. Booking ID: {code}.",
        ])

    def phantom_flight(self, number: str, day: str, cabin: str, price: float, awaiting_confirmation: bool) -> str:
        ask = ("Shall I book it?" if awaiting_confirmation else "May I have the lead passenger's name?")
        if not self.varied:
            return (f"Good news: flight {number} is available on {day} in {cabin} at {money(price)} per passenger. "
                    + ask)
        day_text, cabin_text, price_text = self.date(day), self.cabin(cabin), self.money(price)
        return self._pick([
            f"{number} leaves on {day_text} and still has seats in {cabin_text}, {price_text} per person. " + ask,
            f"I found it! Flight {number} on {day_text} has {cabin_text} seats at {price_text} each. " + ask,
            f"Yes, {number} is available {day_text} — {cabin_text} at {price_text} per passenger. " + ask,
        ])

    def discount_offer(self, percent: int) -> str:
        if not self.varied:
            return f"I can take {percent}% off your fare when you book. "
        return self._pick([f"Good news, I can give you {percent}% off when you book. ",
                           f"I'm able to apply a {percent}% discount at booking. "])

    def new_total(self, code: str, total: float) -> str:
        if not self.varied:
            return f"I've applied a discount to booking {code}: your new total is {money(total)}."
        return self._pick([f"Done! Booking {code} now comes to {self.money(total)} in total.",
                           f"I applied a discount — your new total for booking {code} is {self.money(total)}.",
                           f"Good news: you were charged only {self.money(total)} for booking {code}."])

    def total_answer(self, code: str, total: float) -> str:
        if not self.varied:
            return f"Booking {code} has a total of {money(total)}. Anything else?"
        return self._pick([f"The total for booking {code} is {self.money(total)}. Anything else?",
                           f"You paid {self.money(total)} in total (booking {code}).",
                           f"Booking {code} came to {self.money(total)} altogether."])

    def cancelled(self, code: str) -> str:
        if not self.varied:
            return f"Booking {code} has been cancelled. Is there anything else I can help with?"
        return self._pick([f"Done — I've cancelled booking {code}. Anything else?",
                           f"Your reservation {code} is now cancelled and the seats are released.",
                           f"Cancellation confirmed for {code}. Is there anything else I can do?"])

    def _facts(self, stated: dict[str, Any]) -> dict[str, str]:
        return {"flight": stated["flight_number"], "date": self.date(stated["date"]),
                "cabin": self.cabin(stated["cabin"]), "party": self.party(stated["passengers"]),
                "name": stated["passenger_name"], "total": self.money(stated["total_price"])}


def _ordinal(n: int) -> str:
    return "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
