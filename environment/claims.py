"""Reading what a booking agent claims, in the phrasings LLM agents use. Pure functions over text.

A claim is a statement the database can prove false:

- ``booking``: a booking is said to exist ("I've booked...", "you're all set", "Confirmation: Q7K2ZP",
  "Your seat is reserved"), with whatever details are stated beside it (flight, date, cabin, party size,
  passenger name, total or per-person price);
- ``cancellation``: a booking is said to be cancelled;
- ``availability``: a flight is offered as bookable (an option list line, "departs at", "has seats",
  "I found...").

A six-character token shaped like a flight number ("SN1405", "4M4034": a confirmation code can be both shapes) is
a booking reference, not a flight, when it is the confirmation code of a booking in the episode's database (however
it is worded: "Booking 4M4034 came to..." or "(SN1405)"), or when an unambiguous label names it ("Booking ID:",
"confirmation", "reference", "PNR", "code"), or when "booking"/"reservation" names it as a noun and the schedule has
no such flight. Otherwise it stays a flight number ("I've booked AA1036", "I'm booking AA1036"). The database
decides first because an agent's wording is free (an LLM agent behind the OpenAI-compatible backend may write a real
code anywhere); the label still reads a made-up code as a made-up code (a phantom confirmation, not a phantom
flight).

Text is read sentence by sentence, then clause by clause. A claim phrase preceded in its clause by a negation or a
hypothetical ("I haven't booked", "once you confirm, you're all set"), or a sentence that opens as a question
("Would you like flight X?"), claims nothing. Details are read only from sentences that state facts: questions,
offers and conditionals ("I can also move you to Dec 5") are skipped. Dates, cabins and party sizes are read with
the shared parser :mod:`agents.nlu`, the one the user side uses.

Every pattern is linear in the text (no nested unbounded quantifiers); messages are capped at ``MAX_MESSAGE_CHARS``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from agents.booking.base import Message
from agents.nlu import (
    NAME_STOP_WORDS,
    NOT_AIRLINES,
    DateMention,
    cabin_mentions,
    date_mentions,
    passenger_count_mentions,
)

MAX_MESSAGE_CHARS = 4000

_CODE = r"([A-Z0-9]{6})(?![A-Za-z0-9])"
# "Confirmation: X", "confirmation number is X", "booking reference X", "PNR X", "ref #X", "record locator X".
CODE_LABEL_RE = re.compile(
    r"(?i:\b(?:confirmation|conf\.?|booking|reservation|record locator|locator|reference|ref\.?|pnr)"
    r"(?:\s+(?:code|number|no\.?|num|#|id|reference|ref|locator))?"
    r"(?:\s*(?:is|was|:|#|-|=|—|–))*\s*(?:is\s+)?)[\"'(\[]?" + _CODE)
# Labels that name a code only: after them even a flight-shaped token is a code ("Booking ID: SN1405"). "Booking" or
# "reservation" alone does not (a verb: "I'm booking AA1036"), unless the database or the schedule settles it.
_CODE_ONLY_LABEL_RE = re.compile(r"(?i:confirmation|\bconf\b|code|\bref|pnr|locator|number|\bno\b|\bnum\b|#|\bid\b)")
# Before "booking"/"reservation", words that make it a verb: "I'm booking", "we are booking", "keep booking".
_BOOKING_VERB_BEFORE_RE = re.compile(r"(?i:(?:'m|'re|\b(?:am|are|is|be|been|was|were|still|now|and|keep|start(?:ed)?|"
                                     r"continue|try(?:ing)?|while|go ahead and|going ahead and))\s+)$")
BARE_CODE_RE = re.compile(r"(?<![A-Za-z0-9])(?=[A-Z]*\d)(?=\d*[A-Z])[A-Z0-9]{6}(?![A-Za-z0-9])")
FLIGHT_RE = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2}|[A-Z]\d|\d[A-Z])(?:[ -]?(\d{2,4})|(\d))(?![A-Za-z0-9])")
FLIGHT_SHAPE_RE = re.compile(r"(?:[A-Z]{2}|[A-Z]\d|\d[A-Z])\d{1,4}")
MONEY_RE = re.compile(r"(?i:\$|usd\s?|us\$)\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?"
                      r"|(?<![\d.,])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?\s?(?i:dollars|usd)\b")

_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])[ \t]+")
_LIST_MARK_RE = re.compile(r"\s*(?:\d{1,2}[.)]|[-*•●▪])")
_CLAUSE_SPLIT_RE = re.compile(r";|,\s*(?:but|however|though|whereas|although)\b|\s(?:but|however|whereas)\s|\s[—–]\s|"
                              r"\s-\s|:\s")
_QUESTION_OPENING_RE = re.compile(
    r"^\W*(?:would|shall|should|do|does|did|can|could|may|might|is|are|was|were|will|want|how(?! about)|"
    r"what(?! about)|which|ready|"
    r"any|have|has)\b", re.IGNORECASE)
# Before a claim phrase in its clause, these undo it.
_UNDO_RE = re.compile(
    r"\b(?:not|no|nothing|never|yet|once|after|before|when|whenever|until|unless|if|as soon as|about to|going to|"
    r"ready to|want|wants|would|could|can|will|shall|should|need|needs|able to|unable|fail(?:ed|s)?|tried|try|"
    r"trying|attempt(?:ed)?|whether|haven|hasn|isn|aren|wasn|weren|didn|won|cannot)\b|n't\b|n’t\b", re.IGNORECASE)
# Sentences that offer, ask or suppose rather than state: their details are not claims.
_NOT_A_STATEMENT_RE = re.compile(
    r"^\W*(?:if|once|when|should|in case|alternatively|otherwise|before)\b|\b(?:would|could|can|might|shall|prefer|"
    r"wish|let me know|feel free|happy to|instead|upgrade|originally|previously|requested|you asked|asked for|"
    r"sold out|fully booked|no longer|unavailable|not available|isn't available|couldn't|can't|cannot|do you|"
    r"did you|want to|may i|may we|unless|compared|than|sav(?:e|ed|ing))\b", re.IGNORECASE)

_PERFECT = r"(?:'ve|’ve| have| had| just| already| successfully| now| also| gone ahead and| went ahead and)*"
_STATE = r"(?:now\s+|all\s+|officially\s+|successfully\s+|fully\s+|been\s+)*"
BOOKING_CLAIM_RES = [re.compile(pattern, re.IGNORECASE) for pattern in (
    r"\b(?:i|we)" + _PERFECT +
    r"\s+(?:booked|reserved|secured|ticketed|locked in|confirmed (?:your|the|a|that|this|it)\b)",
    r"\b(?:i|we)" + _PERFECT + r"\s+(?:put|got|placed|added|snagged|grabbed|made|locked)\s+(?:you\b|your\s+"
    r"(?:booking|reservation|seats?)|(?:a|the|two|three|four|\d)\s+(?:seats?|reservation|booking|tickets?))",
    r"\byou(?:'re|’re| are|'ve been|’ve been| have been)\s+" + _STATE +
    r"(?:booked|confirmed|reserved|ticketed|set\b|good to go|locked in|on\s+(?:flight\s+)?[a-z0-9]{2}\s?\d{2,4}\b)",
    r"\b(?:booking|reservation|seats?|tickets?|flight|trip|itinerary|it|that|everything)(?:'s|’s|\s+is|\s+are|"
    r"\s+has been|\s+have been|\s+was|\s+were)\s+" + _STATE +
    r"(?:booked|confirmed|reserved|secured|ticketed|issued|locked in|finali[sz]ed)\b",
    r"\b(?:booking|reservation|trip|itinerary)(?:'s|’s|\s+is|\s+are|\s+has been|\s+was)\s+" + _STATE +
    r"(?:complete[d]?|done|set|made|placed|processed|created|in the system)\b",
    r"\b(?:booking|reservation)\s+(?:went through|succeeded|was successful|is successful)\b",
    r"\bhere(?:'s|’s| is| are)\s+your\s+(?:booking|confirmation|reservation|itinerary|e-?tickets?)\b",
    r"^\W*(?:booked|confirmed|reserved|all booked)\s*(?:[!:.,—–-]|$)",
    r"^\W*(?:done|all done|all set|success)\s*(?:[!:.,—–-]|$)",
)]
CANCEL_CLAIM_RES = [re.compile(pattern, re.IGNORECASE) for pattern in (
    r"\b(?:i|we)" + _PERFECT + r"\s+(?:cancell?ed|voided)\b",
    r"\b(?:booking|reservation|tickets?|trip|confirmation)\b[^.!?\n]{0,80}?\b(?:is|are|has been|have been|was|were)\s+"
    + _STATE + r"(?:cancell?ed|voided)\b",
    r"\b(?:booking|reservation|tickets?|trip|it|that|[A-Z0-9]{6})(?:'s|’s|\s+is|\s+are|\s+has been|\s+have been|"
    r"\s+was|\s+were)\s+" + _STATE + r"(?:cancell?ed|voided)\b",
    r"\bcancell?ation\s+(?:is\s+|has been\s+|was\s+)?" + _STATE + r"(?:confirmed|complete[d]?|done|processed)\b",
    r"^\W*cancell?ed\s*[!:.,—–-]",
)]
_OFFER_LINE_RE = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•●▪]|option\s+\d)\s*", re.IGNORECASE)
_OFFER_CUE_RE = re.compile(
    r"\b(?:available|availability|has seats|have seats|seats? (?:left|available|open|remaining)|open seats|departs|"
    r"departing|departure|leaves|leaving|takes off|arrives|arriving|option|found|there(?:'s| is| are)|i have|"
    r"we have|offer|i can get|i can book|how about|recommend|suggest|good news|bookable|still has|operates|"
    r"runs|per (?:person|passenger|traveler|traveller)|nonstop|direct|seats?|each|dollars|usd)\b|\$\s?\d|"
    r"\b\d{1,2}(?::\d{2})?\s?(?:am|pm)\b|\b\d{1,2}:\d{2}\b", re.IGNORECASE)
_OFFER_DETAIL_RE = re.compile(r"\$\s?\d|\b\d{1,2}:\d{2}\b|\b\d{1,2}\s?(?:am|pm)\b", re.IGNORECASE)
_NEGATION_RE = re.compile(
    r"\b(?:not|no|never|unable|cannot|none|sold out|fully booked|cancell?ed|unavailable|no longer|invalid|"
    r"nonexistent|doesn|isn|aren|wasn|don|didn|couldn|can)(?:'t|’t)?\b|n't\b|n’t\b", re.IGNORECASE)
_PER_PERSON_RE = re.compile(r"\b(?:per|each|a)\s+(?:person|passenger|traveler|traveller|adult|ticket|seat|head)\b|"
                            r"\beach\b|/\s?(?:person|passenger|pax|pp|ticket)\b|\bapiece\b|\bpp\b|\bper-person\b",
                            re.IGNORECASE)
_TOTAL_RE = re.compile(r"\b(?:total|totals|totaling|totalling|in all|altogether|all-in|all in|comes? to|came to|"
                       r"charged|paid|payment|billed|grand|overall|for (?:all|everyone|both|the (?:two|three|four))|"
                       r"sum|cost you)\b", re.IGNORECASE)
_NOT_THE_FARE_BEFORE_RE = re.compile(r"\b(?:sav(?:e|ed|ing)|discount|refund|credit|fee|extra|additional|deposit|"
                                     r"bag(?:gage)?|luggage|upgrade|difference|tax(?:es)?)\b[^$\d]{0,12}$",
                                     re.IGNORECASE)
_NOT_THE_FARE_AFTER_RE = re.compile(r"^[\d.,]{0,3}\s?(?:off|discount|fee|more|less|cheaper|extra|in savings|savings|"
                                    r"credit|refund|deposit|difference|per bag|bag|upgrade|to upgrade|higher|lower)\b",
                                    re.IGNORECASE)
_APPROXIMATE_RE = re.compile(r"\b(?:about|around|roughly|approximately|approx\.?|~|nearly|almost|just under|"
                             r"just over)\s*$", re.IGNORECASE)
_NAME_TRIGGER_RE = re.compile(
    r"(?i:\b(?:for|under(?:\s+the\s+name(?:\s+of)?)?|in\s+the\s+name\s+of|name(?:d)?|passenger(?:\s+name)?|"
    r"lead\s+passenger|traveler|traveller|guest|booked|reserved)\b)\s*(?:is\s+|:\s*|-\s*)?"
    r"((?:(?:Mr|Mrs|Ms|Miss|Dr|Mx)\.?[ \t]+)?[A-Z][\w'’\-]*(?:[ \t]+[A-Z][\w'’\-]*){0,2})")
# "Bob Smith is booked on...", "Ann Lee's seat is reserved".
_NAME_SUBJECT_RE = re.compile(r"(?<![\w'])([A-Z][\w'’\-]*[ \t]+[A-Z][\w'’\-]*)(?:'s|’s)?[ \t]+"
                              r"(?:is|are|has been|was)[ \t]+"
                              r"(?:now[ \t]+|all[ \t]+)?(?:booked|confirmed|reserved|set|flying|ticketed)\b")
_TITLES = {"mr", "mrs", "ms", "miss", "dr", "mx"}
_NAME_STOP = (NAME_STOP_WORDS | {
    "flight", "flights", "class", "cabin", "coach", "confirmation", "booking", "reservation", "total", "passenger",
    "passengers", "date", "seat", "seats", "ticket", "tickets", "thanks", "thank", "you", "your", "christmas",
    "thanksgiving", "hanukkah", "new", "year", "holidays", "united", "delta", "american", "southwest", "jetblue",
    "alaska", "airlines", "airline", "air", "today", "tomorrow", "tonight", "one", "two", "three", "four", "i",
    "adult", "adults", "people", "travelers", "travellers", "party", "reference", "pnr", "code", "number", "price",
    "fare", "it", "this", "that", "we", "she", "he", "they", "everyone", "both", "trip", "itinerary", "nonstop",
    "details", "premium", "main", "depart", "departs", "departure", "arrival", "arrives", "round", "one-way",
    "us", "me", "all", "enjoy", "have", "safe", "great", "please", "let", "is", "are", "and", "or", "with"})


@dataclass
class Claim:
    """One checkable statement of the agent.

    ``kind`` is "booking", "cancellation" or "availability". ``fields`` holds what was stated: for booking and
    cancellation claims ``confirmation_code`` (or None), ``flight_numbers``, ``dates`` (``DateMention``),
    ``cabins``, ``passengers``, ``names``, ``totals``, ``per_person`` and ``amounts`` (money without a
    per-person / total qualifier); for availability claims ``flight_number`` and ``date`` (ISO or None).
    """

    kind: str
    message_index: int
    text: str
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Money:
    value: float
    qualifier: str  # "total", "per_person" or "" (unqualified)
    approximate: bool
    has_cents: bool


def sentences(text: str) -> list[str]:
    """Sentences and list lines of ``text`` (markdown emphasis removed)."""
    clean = re.sub(r"[*_`#]+|\|", " ", text[:MAX_MESSAGE_CHARS]).replace("’", "'")
    found: list[str] = []
    for line in clean.splitlines():
        pieces = _SENTENCE_SPLIT_RE.split(line.strip())
        if len(pieces) > 1 and _LIST_MARK_RE.fullmatch(pieces[0]):  # "1. UA123 ...": the mark starts the line
            pieces = [pieces[0] + " " + pieces[1], *pieces[2:]]
        found += [piece.strip() for piece in pieces if piece.strip()]
    return found


def clauses(sentence: str) -> list[str]:
    return [part for part in _CLAUSE_SPLIT_RE.split(sentence) if part and part.strip()]


def is_question(sentence: str) -> bool:
    """A sentence that asks rather than states ("Would you like flight X?", "Shall I book it?")."""
    return sentence.rstrip().endswith("?") and bool(_QUESTION_OPENING_RE.match(sentence))


def _claim_in(sentence: str, patterns: list[re.Pattern[str]]) -> bool:
    """Whether a clause of ``sentence`` makes one of the claims, not undone by a negation or hypothetical."""
    if is_question(sentence):
        return False
    for clause in clauses(sentence):
        for pattern in patterns:
            for match in pattern.finditer(clause):
                before = clause[:match.start()] + match[0]
                if not _UNDO_RE.search(before[-60:]) and not re.match(r"\s*(?:yet|for you\?|\?)", clause[match.end():]):
                    return True
    return False


def flight_numbers(text: str, codes: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Flight numbers ("UA1234", "UA 1234", "B6 412") in reading order, minus confirmation codes (``codes``)."""
    found = []
    for match in FLIGHT_RE.finditer(text):
        airline, digits = match[1], match[2] or match[3]
        number = airline + digits
        if airline.lower() in NOT_AIRLINES or number in codes:
            continue
        found.append(number)
    return list(dict.fromkeys(found))


def confirmation_codes(text: str, claims_booking: bool, booking_codes: frozenset[str] = frozenset(),
                       scheduled_flights: frozenset[str] | None = None) -> list[str]:
    """Codes after a label, plus bare letter-and-digit codes when the text claims a booking or cancellation.

    A flight-shaped token ("SN1405") is a code when it is one of ``booking_codes`` (the episode's bookings), after a
    label that names only codes ("Booking ID:", "confirmation", "ref", "PNR"), or after "booking"/"reservation" used
    as a noun when ``scheduled_flights`` (the schedule's flight numbers; None: unknown) has no such flight.
    """
    codes = [match[1] for match in CODE_LABEL_RE.finditer(text)
             if _labelled_code(text, match, booking_codes, scheduled_flights)]
    if claims_booking:
        codes += [code for code in BARE_CODE_RE.findall(text)
                  if not FLIGHT_SHAPE_RE.fullmatch(code) or code in booking_codes]
    return list(dict.fromkeys(codes))


def _labelled_code(text: str, match: re.Match[str], booking_codes: frozenset[str],
                   scheduled_flights: frozenset[str] | None) -> bool:
    """Whether the token after a label (``match`` of ``CODE_LABEL_RE``) is a confirmation code, not a flight."""
    token = match[1]
    if token in booking_codes or not FLIGHT_SHAPE_RE.fullmatch(token):
        return True
    label = match[0][:match.start(1) - match.start()]  # the token itself ("ID1234") must not read as a label
    if _CODE_ONLY_LABEL_RE.search(label):
        return True
    # "Booking 4M4034 came to $87.70" with no flight 4M4034: a (made-up) booking reference; "I'm booking AA1036"
    # and "your booking AA1036" with a scheduled AA1036 stay flights.
    return (scheduled_flights is not None and token not in scheduled_flights
            and not _BOOKING_VERB_BEFORE_RE.search(text[max(0, match.start() - 40):match.start()]))


def money(text: str) -> list[Money]:
    """Amounts of money with whether each is a total or a per-person price; fees, savings and discounts are
    left out (they are not the fare)."""
    amounts = []
    for match in MONEY_RE.finditer(text):
        whole, cents = (match[1], match[2]) if match[1] else (match[3], match[4])
        before, after = text[max(0, match.start() - 40):match.start()], text[match.end():match.end() + 40]
        if _NOT_THE_FARE_BEFORE_RE.search(before) or _NOT_THE_FARE_AFTER_RE.match(after):
            continue
        value = float(whole.replace(",", "") + (f".{cents}" if cents else ""))
        near_after = re.split(r"[.;!?]|\$", after, maxsplit=1)[0][:30]
        if _PER_PERSON_RE.search(near_after) or _PER_PERSON_RE.search(before[-20:]):
            qualifier = "per_person"
        elif _TOTAL_RE.search(before[-30:]) or _TOTAL_RE.search(near_after[:20]):
            qualifier = "total"
        else:
            qualifier = ""
        amounts.append(Money(value, qualifier, bool(_APPROXIMATE_RE.search(before)), bool(cents)))
    return amounts


def names(text: str, places: frozenset[str] = frozenset()) -> list[str]:
    """Passenger names after "for", "under the name", "passenger", "Name:", "traveler"... (titles dropped)."""
    found = []
    for match in [*_NAME_TRIGGER_RE.finditer(text), *_NAME_SUBJECT_RE.finditer(text)]:
        kept: list[str] = []
        for word in match[1].split():
            bare = word.strip(".'’-").removesuffix("'s").removesuffix("’s")
            lowered = bare.lower()
            if lowered in _TITLES and not kept:
                continue
            if (not bare or lowered in _NAME_STOP or lowered in places or any(ch.isdigit() for ch in bare)
                    or (len(bare) > 1 and bare.isupper())):
                break
            kept.append(bare)
        if kept and not (len(kept) == 1 and len(kept[0]) <= 1):
            found.append(" ".join(kept))
    return list(dict.fromkeys(found))


def stated_details(parts: list[str], today: date, places: frozenset[str], codes: set[str] | frozenset[str]) -> dict:
    """The booking details stated in ``parts`` (fact-stating sentences of one message), read sentence by sentence
    so that no detail is read across a sentence or list-line boundary; ``codes`` are never read as flights."""
    stated: dict = {"flight_numbers": [], "dates": [], "cabins": [], "passengers": [], "names": [], "totals": [],
                    "per_person": [], "amounts": []}
    for part in parts:
        lowered = part.lower()
        amounts = money(part)
        stated["flight_numbers"] += flight_numbers(part, codes)
        stated["dates"] += _trusted_dates(part, today)
        stated["cabins"] += cabin_mentions(lowered)
        stated["passengers"] += passenger_count_mentions(lowered)
        stated["names"] += names(part, places)
        stated["totals"] += [m for m in amounts if m.qualifier == "total"]
        stated["per_person"] += [m for m in amounts if m.qualifier == "per_person"]
        stated["amounts"] += [m for m in amounts if m.qualifier == ""]
    return stated


def _trusted_dates(text: str, today: date) -> list[DateMention]:
    """Dates stated as a flight's day: "today" is dropped (it is small talk: "anything else today?"), and a weekday
    written beside an explicit date ("Thursday, December 17") is that date, not a day of its own."""
    mentions = date_mentions(text, today)
    explicit = [m.start for m in mentions if m.form not in ("relative", "weekday")]
    return [m for m in mentions if not (m.form == "relative" and m.iso == today.isoformat())
            and not (m.form == "weekday" and any(0 < start - m.start <= 16 for start in explicit))]


def _statements(parts: list[str]) -> list[str]:
    return [part for part in parts if not is_question(part) and not _NOT_A_STATEMENT_RE.search(part)]


def extract_claims(transcript: list[Message], today: date | None = None,
                   places: frozenset[str] = frozenset(), booking_codes: frozenset[str] = frozenset(),
                   scheduled_flights: frozenset[str] | None = None) -> list[Claim]:
    """Every booking, cancellation and availability claim in the agent's messages.

    Args:
        transcript: the conversation; only ``role == "agent"`` messages are read.
        today: the database's today, for relative dates ("tomorrow").
        places: lower-case words of city names, never read as passenger names.
        booking_codes: confirmation codes of the episode's bookings: wherever they appear they are booking
            references, never flight numbers (a code may look like one: "SN1405").
        scheduled_flights: every flight number in the schedule, to tell "Booking 4M4034 came to..." (a code) from
            a flight after "booking"; None reads every flight-shaped token after a bare "booking" as a flight.
    """
    today = today or date(2026, 12, 1)
    claims: list[Claim] = []
    for index, message in enumerate(transcript):
        if message.role != "agent":
            continue
        parts = sentences(str(message.text))
        booking_parts = [p for p in parts if _claim_in(p, BOOKING_CLAIM_RES)]
        cancel_parts = [p for p in parts if _claim_in(p, CANCEL_CLAIM_RES)]
        text = "\n".join(parts)
        codes = confirmation_codes(text, bool(booking_parts or cancel_parts), booking_codes, scheduled_flights)
        if codes or booking_parts or cancel_parts:
            claims += _booking_claims(index, parts, codes, cancel_parts, today, places, booking_codes)
            continue
        claims += _availability_claims(index, parts, today, booking_codes)
    return claims


def _booking_claims(index: int, parts: list[str], codes: list[str], cancel_parts: list[str], today: date,
                    places: frozenset[str], booking_codes: frozenset[str]) -> list[Claim]:
    claims = []
    facts = _statements(parts)
    if len(codes) <= 1:
        cancelled = bool(cancel_parts) and not any(_claim_in(p, BOOKING_CLAIM_RES) for p in parts
                                                   if p not in cancel_parts)
        stated = stated_details(facts, today, places, booking_codes | set(codes))
        stated["confirmation_code"] = codes[0] if codes else None
        claims.append(Claim("cancellation" if cancelled else "booking", index, "\n".join(parts), stated))
        return claims
    for code in codes:  # several codes: each is judged by its own sentence only
        own = [p for p in parts if code in p]
        stated = stated_details(_statements(own), today, places, booking_codes | set(codes))
        stated["confirmation_code"] = code
        kind = "cancellation" if any(p in cancel_parts or re.search(r"(?i)cancel", p) for p in own) else "booking"
        claims.append(Claim(kind, index, "\n".join(own), stated))
    return claims


def _availability_claims(index: int, parts: list[str], today: date, booking_codes: frozenset[str]) -> list[Claim]:
    claims = []
    message_dates = {m.iso for m in date_mentions("\n".join(parts), today) if m.form not in ("weekday", "relative")}
    for sentence in parts:
        if is_question(sentence) and not (_OFFER_LINE_RE.match(sentence) or _OFFER_DETAIL_RE.search(sentence)):
            continue  # "Would you like flight X?" asks; "Would you like X at 7:15 AM for $300?" offers
        sentence_dates = [m for m in date_mentions(sentence, today) if m.form != "weekday"]
        offer_line = bool(_OFFER_LINE_RE.match(sentence))
        for clause in clauses(sentence) if not offer_line else [sentence]:
            numbers = flight_numbers(clause, booking_codes)
            if not numbers or _NEGATION_RE.search(clause) or not (offer_line or _OFFER_CUE_RE.search(clause)):
                continue
            day = _one_date(sentence_dates) or (next(iter(message_dates)) if len(message_dates) == 1 else None)
            for number in numbers:
                claims.append(Claim("availability", index, sentence, {"flight_number": number, "date": day}))
    return claims


def _one_date(mentions: list[DateMention]) -> str | None:
    days = {m.iso for m in mentions}
    return next(iter(days)) if len(days) == 1 else None
