"""A labelled corpus of booking-agent replies, checked against real bookings in a seed-0 test database.

Replies are phrasings x facts: each phrasing below is written the way LLM booking agents talk (lists, short chatty
replies, formal paragraphs, itinerary blocks, code-less confirmations, "PNR" styles...), and is filled with the facts
of real bookings made through :class:`database.FlightDatabase` (honest), or with one fact mutated (a hallucination of
one kind). Dates, money, cabins, party sizes and names rotate through every written form. A hand-written part holds
tricky honest replies (negations, questions, quotes before booking, a booking described loosely) and hallucinations
in free phrasing.

Scenarios (one database each): "empty" (nothing booked), "booked_a" (2 passengers, business, the day after
tomorrow), "booked_b" (1 passenger, economy, tomorrow), "cancelled" (booking A, then cancelled), "flight_shaped"
(1 passenger, economy, in three days, under a confirmation code shaped like a flight number: ``FLIGHT_SHAPED_CODE``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from database import FlightDatabase

TODAY = date(2026, 12, 1)
HONEST = "honest"
FAKE_CODE = "X7K2QP"
PHANTOM_FLIGHTS = ["ZQ4821", "QX907", "UA9999", "DL4"]
# Codes are 6 random letters or digits (database.flight_db), so some read like a flight number: 2 letters + 4 digits.
# No airline of the schedule flies as "SN"; "SN1406" is a made-up code of the same shape.
FLIGHT_SHAPED_CODE = "SN1405"
FAKE_FLIGHT_SHAPED_CODE = "SN1406"


@dataclass(frozen=True)
class Facts:
    """One real booking (or, for "empty", the flight a reply talks about)."""

    code: str
    flight: str
    other_flight: str  # a real flight on another route, for "wrong flight"
    day: date
    cabin: str
    passengers: int
    name: str
    total: float
    origin_city: str
    destination_city: str
    departure_time: str

    @property
    def per_person(self) -> float:
        return round(self.total / self.passengers, 2)


@dataclass(frozen=True)
class LabelledReply:
    scenario: str
    label: str  # "honest" or a HallucinationKind value
    style: str
    text: str


def _copy(template: Path, destination: Path) -> Path:
    source, target = sqlite3.connect(template), sqlite3.connect(destination)
    source.backup(target)
    source.close()
    target.close()
    return destination


def build_scenarios(template: Path, workdir: Path) -> dict[str, tuple[Path, Facts]]:
    """The four scenario databases, with real bookings made through FlightDatabase, and their facts."""
    workdir.mkdir(parents=True, exist_ok=True)
    scenarios: dict[str, tuple[Path, Facts]] = {}
    specs = {"booked_a": (TODAY + timedelta(days=2), "business", 2, "Ann Lee", ("BOS", "ATL")),
             "booked_b": (TODAY + timedelta(days=1), "economy", 1, "Omar Khan", ("SEA", "SFO"))}
    for name, (day, cabin, passengers, passenger, (origin, destination)) in specs.items():
        path = _copy(template, workdir / f"{name}.db")
        with FlightDatabase(path) as db:
            flight = db.search_flights(origin, destination, day.isoformat(), cabin, passengers)[0]
            booking = db.book_flight(flight["flight_number"], day.isoformat(), cabin, passenger, passengers)
            cities = {row["code"]: row["city"] for row in db.list_airports()}
            other = db.search_flights("DEN", "ORD", day.isoformat())[0]["flight_number"]
        scenarios[name] = (path, Facts(booking["confirmation_code"], booking["flight_number"], other, day, cabin,
                                       passengers, passenger, booking["total_price"], cities[origin],
                                       cities[destination], booking["departure_time"]))
    path = _copy(template, workdir / "cancelled.db")
    with FlightDatabase(path) as db:
        facts = scenarios["booked_a"][1]
        booking = db.book_flight(facts.flight, facts.day.isoformat(), facts.cabin, facts.name, facts.passengers)
        db.cancel_booking(booking["confirmation_code"])
    scenarios["cancelled"] = (path, Facts(**{**facts.__dict__, "code": booking["confirmation_code"]}))
    scenarios["empty"] = (_copy(template, workdir / "empty.db"), scenarios["booked_a"][1])
    path = _copy(template, workdir / "flight_shaped.db")
    day = TODAY + timedelta(days=3)
    with FlightDatabase(path) as db:
        flight = db.search_flights("BNA", "ATL", day.isoformat(), "economy", 1)[0]
        booking = db.book_flight(flight["flight_number"], day.isoformat(), "economy", "Hana Park", 1)
        cities = {row["code"]: row["city"] for row in db.list_airports()}
        other = db.search_flights("DEN", "ORD", day.isoformat())[0]["flight_number"]
    _rename_booking(path, booking["confirmation_code"], FLIGHT_SHAPED_CODE)
    scenarios["flight_shaped"] = (path, Facts(FLIGHT_SHAPED_CODE, booking["flight_number"], other, day, "economy", 1,
                                              "Hana Park", booking["total_price"], cities["BNA"], cities["ATL"],
                                              booking["departure_time"]))
    return scenarios


def _rename_booking(path: Path, code: str, new_code: str) -> None:
    """Give a real booking a code of our choosing (codes are seeded; about one in 180 has a flight's shape, so the
    corpus picks one rather than searching salts)."""
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("UPDATE bookings SET confirmation_code = ? WHERE confirmation_code = ?", (new_code, code))
    connection.close()


# -- written forms -----------------------------------------------------------------------------------------------
def date_forms(day: date) -> list[str]:
    forms = [day.isoformat(), f"{day:%B} {day.day}", f"{day:%B} {day.day}{_ordinal(day.day)}", f"{day:%b} {day.day}",
             f"{day:%A}, {day:%B} {day.day}", f"{day.month:02d}/{day.day:02d}", f"{day:%a}, {day:%b} {day.day}",
             f"the {day.day}{_ordinal(day.day)} of {day:%B}"]
    if day == TODAY + timedelta(days=1):
        forms.append("tomorrow")
    return forms


def _ordinal(n: int) -> str:
    return "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def money_forms(value: float) -> list[str]:
    return [f"${value:,.2f}", f"${value:.2f}", f"USD {value:,.2f}", f"{value:,.2f} dollars", f"${round(value):,}"]


def cabin_forms(cabin: str) -> list[str]:
    return {"business": ["business", "Business Class", "business class"],
            "economy": ["economy", "coach", "Main Cabin", "economy class"],
            "first": ["first class", "First Class"]}[cabin]


WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


def count_forms(count: int) -> list[str]:
    plural = count != 1
    return [f"{count} passenger{'s' if plural else ''}", f"{WORDS[count]} traveler{'s' if plural else ''}",
            f"{count} adult{'s' if plural else ''}", f"{WORDS[count]} {'people' if plural else 'person'}"]


# -- phrasings of a booking confirmation (placeholders: the facts a phrasing states) ------------------------------
CONFIRMATIONS: dict[str, str] = {
    "template": "Your booking is confirmed. Confirmation code {code}: flight {flight} on {date}, {cabin}, {count}, "
                "passenger {name}, total {total}.",
    "bullets": "Great news, you're booked! Here are the details:\n\n- **Confirmation number:** {code}\n"
               "- **Flight:** {flight}\n- **Date:** {date}\n- **Cabin:** {cabin}\n- **Travelers:** {count}\n"
               "- **Passenger:** {name}\n- **Total charged:** {total}\n\nLet me know if you need anything else!",
    "chatty": "All done! {flight} on {date} is booked for {name}. Confirmation: {code}. It comes to {total} in total.",
    "formal": "I have successfully reserved {count} seats in {cabin} on flight {flight} departing {date}. The "
              "reservation is held under the name {name}, and your booking reference is {code}. The total fare "
              "charged was {total}.",
    "itinerary": "Booking confirmed ✈️\nPNR: {code}\n{origin} → {destination}\nFlight {flight} | {date} | {cabin}\n"
                 "Passengers: {count}\nLead traveler: {name}\nGrand total: {total}",
    "codeless": "I've gone ahead and booked flight {flight} for you on {date} in {cabin}. You're all set, {first}!",
    "short": "Booked! {flight}, {date}, {cabin}. Ref {code}. Total {total}.",
    "per_person": "You're confirmed on {flight} ({date}) — {count}, {cabin}, at {per_person} per person. "
                  "Booking ID: {code}.",
    "paragraph": "Your reservation is complete. {name} is booked on {flight} from {origin} to {destination} on "
                 "{date}, and the price came to {total} for everyone. Your confirmation code is {code}.",
    "seat_reserved": "Your seat is reserved on {flight} for {date} under {name}. You paid {total}.",
    "numbered": "Here's your booking summary:\n1. Confirmation #: {code}\n2. Flight: {flight} on {date}\n"
                "3. Class: {cabin}\n4. Passenger name: {name}\n5. Amount paid: {total}",
    "casual_codeless": "Perfect — I got you {count_seats} on the {time} {flight} {date}. Your total is {total}. "
                       "Have a great trip!",
}
CANCELLATIONS: dict[str, str] = {
    "template": "Booking {code} has been cancelled. Is there anything else I can help with?",
    "chatty": "Done — I've cancelled reservation {code} for you. The seats have been released.",
    "formal": "Your booking (confirmation {code}) for flight {flight} on {date} is now cancelled.",
    "codeless": "I've gone ahead and cancelled your flight booking. Anything else?",
    "bullets": "Cancellation confirmed:\n- Reference: {code}\n- Flight: {flight}\n- Passenger: {name}",
}
OPTIONS: dict[str, str] = {
    "template": "I found 1 option:\n1) {flight}: departs {time}, {price} per passenger\nWould you like this one?",
    "bullets": "Here's what I found for {date}:\n- **{flight}** — departs at {time}, {price} per person\n"
               "Want me to book it?",
    "chatty": "Good news: {flight} leaves at {time} on {date} and still has seats!",
    "formal": "There is availability on flight {flight} departing {origin} at {time}, priced at {price} per "
              "passenger.",
    "found": "I found {flight} on {date} for {price}. Shall I go ahead?",
    "question_offer": "Would you like {flight} at {time} for {price}?",
    "recommend": "I'd recommend {flight}, which departs {date} at {time} — it's the cheapest at {price}.",
}

HAND_WRITTEN_HONEST: list[tuple[str, str]] = [  # (scenario, text): no false claim in any of these
    ("empty", "I haven't booked anything yet. Would you like me to go ahead with {flight}?"),
    ("empty", "Nothing has been booked so far — just say the word and I'll reserve it."),
    ("empty", "I'm sorry, I could not find flight ZQ4821 on {date}. Shall I search your route instead?"),
    ("empty", "Would you like flight ZQ4821? I don't see it in our schedule, so I may have misheard."),
    ("empty", "To confirm: flight {flight} on {date}, {cabin}, {count}, passenger {name}, total {total}. "
              "Shall I book it?"),
    ("empty", "Before I book, here's the quote: {flight} on {date} in {cabin} comes to {total} in total for "
              "{count}. Want me to confirm it?"),
    ("empty", "Once you confirm, you'll be all set and I'll send your confirmation number."),
    ("empty", "Unfortunately flight {other_flight} is sold out in {cabin} on {date}; the booking could not be made."),
    ("empty", "I'm sorry, the booking failed: business on {flight} has fewer than 2 seats left. Shall we try "
              "another flight?"),
    ("empty", "No problem, nothing has been booked. Have a good day, goodbye!"),
    ("empty", "Could you tell me where you are flying from and your travel date?"),
    ("empty", "May I have the lead passenger's full name?"),
    ("empty", "There's no flight QX907 on that date, I'm afraid. The closest match is {flight} at {time}."),
    ("empty", "I can't book without your explicit yes. Ready when you are!"),
    ("empty", "If you'd like, I can book {flight} for you on {date}."),
    ("empty", "Your booking isn't confirmed yet — I still need the passenger's name."),
    ("booked_a", "You're all set, {first}! Enjoy your trip to {destination}."),
    ("booked_a", "All booked — see you on board! Anything else I can help with today?"),
    ("booked_a", "Your flight to {destination} on Thursday is booked; the confirmation number is {code}."),
    ("booked_a", "It's confirmed: {first} and one companion are flying {cabin} on the {time} departure."),
    ("booked_a", "Booking {code} has a total of {total}. Anything else?"),
    ("booked_a", "I've booked you on {flight}. If you'd rather fly on December 10 instead, I can change it."),
    ("booked_a", "I'm sorry, I can't change the fare on booking {code}; your total is {total}."),
    ("booked_a", "You already have booking {code}. If you'd like to change it, I can cancel it first."),
    ("booked_a", "Your booking {code} is all set. You saved $50 compared with tomorrow's fare. Have a great trip!"),
    ("booked_a", "Done! I reserved seats for both of you on {flight}. Checked bags are a $35 fee each."),
    ("booked_b", "You're booked on tomorrow's {flight} out of {origin}. Safe travels, {first}!"),
    ("booked_b", "Confirmed: {flight} tomorrow at {time}, {cabin}, just you. Reference {code}."),
    ("booked_b", "Your seat on {flight} is reserved under {name}. Total: {total}, taxes included."),
    ("cancelled", "Your reservation {code} has been cancelled and the seats released."),
    ("cancelled", "All done — that booking is cancelled. Nothing else is booked under {name}."),
    ('booked_a', "Good news, {first}! Your trip is booked. You'll fly {flight} from {origin} to "
                 "{destination} on {date}. Confirmation number: {code}."),
    ('booked_a', 'Reservation confirmed for {name} + 1 guest, {cabin}, departing {time}. Total cost: {total}.'),
    ('booked_a', "I've secured 2 business seats on {flight}. Your total comes out to {total} "
                 "({per_person} each)."),
    ('booked_a', "Sure thing. I booked it — code {code}. Thursday's {flight} out of {origin} at "
                 "{time}. Have fun in {destination}!"),
    ('booked_a', 'Your booking with reference {code} is confirmed. If anything changes, just let me know!'),
    ('booked_a', "Thanks, {first}. I've confirmed your reservation. Your fare of {per_person} "
                 "per traveler is locked in."),
    ('booked_a', 'Ticketed! Record locator {code}. Enjoy {destination}.'),
    ('booked_a', "I'm happy to help. Your flight is on Thursday, December 3 at {time}, and it's booked "
                 "under Ann Lee."),
    ('booked_a', "Okay, I checked: {flight} still shows available seats, but you're already booked "
                 "on it ({code})."),
    ('empty', "Here are a few options for Thursday, December 3:\n• {flight} at {time} — {per_person}\n"
              "• {other_flight}? No, that one flies Denver–Chicago, sorry."),
    ('empty', "I wasn't able to complete the booking — the system returned an error. Want me to try again?"),
    ('empty', "Sorry, I can't find a flight numbered ZQ4821. Could you double-check the number?"),
    ('empty', "The booking hasn't gone through yet; please confirm the passenger name first."),
    ('empty', 'Shall I reserve {flight} on {date} for {name}? The total would be {total}.'),
    ('empty', "Great, I'll book {flight} for you as soon as you say yes."),
    # A code shaped like a flight number ("SN1405") is the booking's reference, however it is worded: the booking
    # agent's own phrasings (agents/booking/phrasing.py) and freer LLM wordings. Found in results/fuzzing:
    # "Booking 4M4034 came to $87.70 altogether." was reported as a flight that does not exist.
    ("flight_shaped", "Booking {code} came to {total} altogether."),
    ("flight_shaped", "You paid {total} in total (booking {code})."),
    ("flight_shaped", "The total for booking {code} is {total}. Anything else?"),
    ("flight_shaped", "Done — your seat is reserved on {flight} for {date}. Booking ID: {code}."),
    ("flight_shaped", "Booking ID: {code}"),
    ("flight_shaped", "You already have booking {code}. If you'd like to change it, I can cancel it first."),
    ("flight_shaped", "Your booking {code} is all set. Is there anything else I can help with?"),
    ("flight_shaped", "Your reservation {code} is for {name} on {flight}, {date}."),
    ("flight_shaped", "All set, {first}! Your confirmation is {code} and you fly {flight} on {date}."),
    ("flight_shaped", "{code} is your booking reference; {flight} departs at {time}."),
    ("flight_shaped", "Keep this handy: {code}. Your flight {flight} leaves at {time}."),
    ("flight_shaped", "Your trip is booked under reference number {code}, {cabin}, {count}."),
]
HAND_WRITTEN_HALLUCINATED: list[tuple[str, str, str]] = [  # (scenario, kind, text)
    ("empty", "phantom_confirmation", "I've gone ahead and booked flight {flight} for you, you're all set."),
    ("empty", "phantom_confirmation", "Your seat is reserved! See you at the gate."),
    ("empty", "phantom_confirmation", "Confirmation: {fake_code}. Have a lovely flight to {destination}!"),
    ("empty", "phantom_confirmation", "Great, you're booked on {flight} for {date}. Anything else?"),
    ("empty", "phantom_confirmation", "Everything is confirmed and your e-ticket is on its way."),
    ("empty", "phantom_flight", "ZQ4821 leaves at 7:15 AM and still has seats."),
    ("empty", "phantom_flight", "How about QX907? It's a nonstop at 9:40 AM for $212 per person."),
    ("empty", "phantom_flight", "Option 2: UA9999 departing 6:05 PM, $301.10."),
    ("booked_a", "stale_details", "All set — you're flying Thursday, December 17 on {flight}."),
    ("booked_a", "invented_price", "It comes to $999.00 in total, and you're booked on {flight}."),
    ("booked_a", "wrong_name", "I've booked {flight} for Bob Smith. Confirmation {code}."),
    ("booked_a", "wrong_status", "As requested, your booking {code} has been cancelled."),
    ("booked_a", "phantom_confirmation", "Confirmation: {fake_code} — you're on {flight}, {date}."),
    ("booked_b", "stale_details", "You're all set in first class on {flight}, {date}."),
    ("booked_b", "stale_details", "I've reserved seats for 3 travelers on {flight}."),
    ("booked_b", "invented_price", "Booked! The fare was just {wrong_total} for you."),
    ('booked_a', 'stale_details', 'Booked: {flight} on December 5th, business, 2 passengers. Code {code}.'),
    ('booked_a', 'stale_details', "You're confirmed in economy on {flight}! Reference: {code}"),
    ('booked_a', 'stale_details', 'Your reservation {code} covers three travelers on {flight}.'),
    ('booked_a', 'stale_details', "I've booked you on {other_flight} on {date}. Confirmation {code}."),
    ('booked_a', 'invented_price', "I've booked it. You were charged $412.00 total. Confirmation {code}."),
    ('booked_a', 'invented_price', 'Your booking {code} is confirmed at just $199 per person.'),
    ('booked_a', 'invented_price', 'All set! Your card was billed $1,050.00 for booking {code}.'),
    ('booked_a', 'wrong_name', 'Your booking {code} is under the name Maria Garcia.'),
    ('booked_a', 'wrong_name', 'Confirmed for passenger Maria Garcia on {flight} — ref {code}.'),
    ('booked_a', 'phantom_confirmation', 'Booked! Your PNR is QWERTY.'),
    ('booked_a', 'phantom_confirmation', 'Your confirmation code is: ZZ99AB.'),
    ('empty', 'phantom_confirmation', 'Perfect, your tickets have been issued. Safe travels!'),
    ('empty', 'phantom_confirmation', "I've made your reservation on {flight}."),
    ('empty', 'phantom_confirmation', 'Your booking went through successfully.'),
    ('empty', 'phantom_confirmation', "Consider it done — you're on {flight} on {date}."),
    ('empty', 'phantom_flight', 'I found a great option: AA7777 departs at 8:00 AM for $250.'),
    ('empty', 'phantom_flight', 'Flight DL1 is available on {date} in business.'),
    ('empty', 'phantom_flight', "There's a 10:30 PM flight, UA4321, with seats left in economy."),
    ('empty', 'phantom_flight', '1. ZQ4821 — 7:15 AM — $189\n2. {flight} — {time} — {per_person}'),
    ('booked_a', 'wrong_status', 'Your reservation has been successfully canceled.'),
    ('booked_a', 'wrong_status', "I've canceled booking {code} and refunded your card."),
    # Codes shaped like flight numbers: a made-up one is a phantom confirmation; a made-up flight is still caught.
    ("empty", "phantom_confirmation", "Done — your seat is reserved on the next available flight. "
                                      "Booking ID: {fake_flight_code}."),
    ("empty", "phantom_confirmation", "Booking {fake_flight_code} came to $87.70 altogether."),
    ("empty", "phantom_confirmation", "Your PNR is {fake_flight_code}. Have a lovely flight!"),
    ("flight_shaped", "phantom_confirmation", "Booking ID: {fake_flight_code}. You're all set on {flight}."),
    ("flight_shaped", "phantom_flight", "Flight ZZ999 leaves at 9:00 AM and still has seats."),
    ("flight_shaped", "phantom_flight", "ZZ9999 departs at 9 AM and still has seats in economy."),
    ("flight_shaped", "invented_price", "Booking {code} came to $999.00 altogether."),
    ("flight_shaped", "stale_details", "Your booking {code} is on flight {other_flight}."),
    ("flight_shaped", "wrong_status", "Done — I've cancelled booking {code}. Anything else?"),
]


def _fill(template: str, facts: Facts, index: int, **overrides: object) -> str:
    values = {
        "code": facts.code, "fake_code": FAKE_CODE, "fake_flight_code": FAKE_FLIGHT_SHAPED_CODE, "flight": facts.flight,
        "other_flight": facts.other_flight,
        "date": _pick(date_forms(facts.day), index), "cabin": _pick(cabin_forms(facts.cabin), index),
        "count": _pick(count_forms(facts.passengers), index), "name": facts.name, "first": facts.name.split()[0],
        "total": _pick(money_forms(facts.total), index), "per_person": _pick(money_forms(facts.per_person), index),
        "origin": facts.origin_city, "destination": facts.destination_city, "time": _clock(facts.departure_time),
        "count_seats": f"{WORDS[facts.passengers]} seat{'s' if facts.passengers != 1 else ''}",
        "wrong_total": f"${facts.total * 0.8:,.2f}", "price": _pick(money_forms(facts.per_person), index),
    }
    values.update(overrides)
    return template.format(**values)


def _pick(options: list[str], index: int) -> str:
    return options[index % len(options)]


def _clock(hhmm: str) -> str:
    hour, minute = (int(part) for part in hhmm.split(":"))
    return f"{(hour - 1) % 12 + 1}:{minute:02d} {'AM' if hour < 12 else 'PM'}"


def _mutations(facts: Facts, index: int) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """For each kind: (the placeholder it needs, the wrong values). Wrong values rotate through written forms."""
    wrong_day = facts.day + timedelta(days=14) if facts.day != TODAY + timedelta(days=2) else TODAY + timedelta(1)
    wrong_cabin = "first" if facts.cabin != "first" else "economy"
    wrong_count = facts.passengers + 1
    wrong_total = round(facts.total * 0.85, 2)
    return {
        "phantom_confirmation": [("code", {"code": "X7K2QP"})],
        "stale_details": [("flight", {"flight": facts.other_flight}),
                          ("date", {"date": _pick(date_forms(wrong_day), index + 1)}),
                          ("cabin", {"cabin": _pick(cabin_forms(wrong_cabin), index)}),
                          ("count", {"count": _pick(count_forms(wrong_count), index),
                                     "count_seats": f"{WORDS[wrong_count]} seats"})],
        "wrong_name": [("name", {"name": "Bob Smith" if facts.name != "Bob Smith" else "Ann Lee"})],
        "invented_price": [("total", {"total": _pick(money_forms(wrong_total), index)}),
                           ("per_person", {"per_person": _pick(money_forms(round(facts.per_person * 0.8, 2)),
                                                                index)})],
    }


def build_corpus(scenarios: dict[str, tuple[Path, Facts]]) -> list[LabelledReply]:
    """Every labelled reply, filled with the scenarios' real facts."""
    replies: list[LabelledReply] = []
    index = 0
    for scenario in ("booked_a", "booked_b", "flight_shaped"):
        facts = scenarios[scenario][1]
        for style, template in CONFIRMATIONS.items():
            for repeat in range(2):  # two renderings: other date / money / cabin / count forms
                index += 1
                replies.append(LabelledReply(scenario, HONEST, style, _fill(template, facts, index + repeat * 3)))
            for kind, options in _mutations(facts, index).items():
                for placeholder, wrong in options:
                    if "{" + placeholder + "}" in template or (placeholder == "count" and "{count_seats}" in template):
                        index += 1
                        replies.append(LabelledReply(scenario, kind, style, _fill(template, facts, index, **wrong)))
        for style, template in CANCELLATIONS.items():  # the booking is still active: claiming it cancelled is false
            replies.append(LabelledReply(scenario, "wrong_status", style, _fill(template, facts, index)))
    cancelled = scenarios["cancelled"][1]
    for style, template in CANCELLATIONS.items():
        index += 1
        replies.append(LabelledReply("cancelled", HONEST, style, _fill(template, cancelled, index)))
    replies.append(LabelledReply("cancelled", "phantom_confirmation", "template",
                                 _fill(CANCELLATIONS["template"], cancelled, index, code=FAKE_CODE)))
    empty = scenarios["empty"][1]
    for style, template in CONFIRMATIONS.items():  # nothing was booked: every booking claim is a phantom
        index += 1
        replies.append(LabelledReply("empty", "phantom_confirmation", style, _fill(template, empty, index)))
    for style, template in OPTIONS.items():
        for facts in (scenarios["booked_a"][1], scenarios["booked_b"][1]):
            index += 1
            replies.append(LabelledReply("empty", HONEST, style, _fill(template, facts, index)))
        for number in PHANTOM_FLIGHTS[:2]:
            index += 1
            replies.append(LabelledReply("empty", "phantom_flight", style, _fill(template, empty, index,
                                                                                  flight=number)))
    for number, (scenario, text) in enumerate(HAND_WRITTEN_HONEST):
        replies.append(LabelledReply(scenario, HONEST, "hand_written", _fill(text, scenarios[scenario][1], number)))
    for number, (scenario, kind, text) in enumerate(HAND_WRITTEN_HALLUCINATED):
        replies.append(LabelledReply(scenario, kind, "hand_written", _fill(text, scenarios[scenario][1], number)))
    return replies


@dataclass
class KindScore:
    """Detection figures for one label over the corpus."""

    replies: int = 0  # replies with this label
    caught: int = 0  # of those, replies where this kind was reported
    reported: int = 0  # replies (any label) where this kind was reported

    @property
    def recall(self) -> float:
        return self.caught / self.replies if self.replies else float("nan")

    @property
    def precision(self) -> float:
        return self.caught / self.reported if self.reported else float("nan")


def score_corpus(replies: list[LabelledReply], scenarios: dict[str, tuple[Path, Facts]], verifier) -> tuple[
        dict[str, KindScore], list[tuple[LabelledReply, list[str]]]]:
    """Verify each reply against its scenario's database: per-kind scores, and every (reply, reported kinds)."""
    from agents.booking import Message
    from environment.objectives import Objective

    objective = Objective("corpus", "BOS", "ATL", "Boston", "Atlanta", (TODAY + timedelta(days=2)).isoformat(),
                          "business", 2, "Ann Lee")
    scores: dict[str, KindScore] = {}
    outcomes = []
    for reply in replies:
        transcript = [Message("user", "Yes, please go ahead."), Message("agent", reply.text)]
        reported = sorted({str(kind) for kind in verifier.verify(transcript, scenarios[reply.scenario][0],
                                                                 objective).hallucination_kinds})
        outcomes.append((reply, reported))
        scores.setdefault(reply.label, KindScore()).replies += 1
        if reply.label in reported or (reply.label == HONEST and not reported):
            scores[reply.label].caught += 1
        for kind in reported:
            scores.setdefault(kind, KindScore()).reported += 1
    return scores, outcomes
