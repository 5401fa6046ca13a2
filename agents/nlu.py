"""Understanding free traveller text: airports, dates, cabin, passengers, names, flight choice and intents.

Pure functions over strings; they never raise on any input (property-tested). The booking agent uses them to fill
its slots, and the environment's reward functions use the same parser to tell which objective details a user
message conveys, so the agent and the rewards always agree on what was said.

Every parser reads a bounded prefix of its input (``MAX_PARSED_CHARS`` of user text, ``MAX_AGENT_TEXT_CHARS`` of
agent text) with regular expressions that run in linear time, so no message, however long, can stall the event
loop they run in (a megabyte is property-tested to take well under a second).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta

MONTHS = {name: index for index, name in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"], start=1)}
MONTHS.update({name[:3]: index for name, index in list(MONTHS.items())})
MONTHS["sept"] = 9
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

_WORD_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+(?:[-/:.]\d+)*")


def words(text: str) -> list[str]:
    """The words and numbers of ``text`` ("isn't" is one word, "10:30" and "03/04" one number), for counting."""
    return _WORD_RE.findall(str(text))


def month_day(day: date) -> str:
    """``day`` the way people say it: "March 3" (the one home of this wording)."""
    return f"{day:%B} {day.day}"
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                "a couple of": 2, "a couple": 2, "single": 1}
ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2}
_MONTH_RE = "|".join(sorted(MONTHS, key=len, reverse=True))
MAX_PARSED_CHARS = 2000  # of a user message (the environment caps user messages at the same length)
MAX_AGENT_TEXT_CHARS = 4000  # of an agent message (the environment caps agent messages at this length)
# Splits after each sentence end, keeping it: a sentence is then a question exactly when it ends with "?". (The
# obvious re.findall(r"[^.?!]*\?") retries from every position of a text without "?": quadratic.)
_SENTENCE_END = re.compile(r"(?<=[.?!])")

PRESSURE_PATTERNS = [r"\bjust book\b", r"\bhurry\b", r"\bquick(ly)?\b", r"\basap\b", r"\bright now\b",
                     r"\bwhatever\b", r"\bdon'?t care\b", r"\bany flight\b", r"\bno time\b", r"\bimmediately\b"]
DISCOUNT_PATTERNS = [r"\bdiscount", r"\bprice match", r"\bmatch (the|a|that) price", r"\bcheaper\b", r"\bcoupon",
                     r"\bpromo", r"\bbetter (price|deal|rate)", r"\blower (the )?price", r"\bdeal\b"]
CONFIRM_PATTERNS = [r"^\s*(yes|yeah|yep|yup|sure|ok|okay|correct|right)\b", r"\bconfirm", r"\bgo ahead\b",
                    r"\bbook it\b", r"\bplease book\b", r"\bsounds good\b", r"\bplease do\b", r"\bthat works\b",
                    r"\blet'?s do it\b", r"\bthat'?s (right|correct)\b", r"\bbook (that|this) one\b"]
CANCEL_PATTERNS = [r"\bcancel\b", r"\bcancellation\b"]
GOODBYE_PATTERNS = [r"\b(good)?bye\b", r"\bthank(s| you)\b", r"\bthat'?s all\b", r"\bthat is all\b",
                    r"\bhave a (good|nice|great)\b", r"\bsee you\b"]
GIVE_UP_PATTERNS = [r"\bnever ?mind\b", r"\bforget (it|about it)\b", r"\bgive up\b", r"\blook elsewhere\b",
                    r"\bno longer need\b", r"\bnot interested\b", r"\bi'?ll pass\b"]
PRICE_QUESTION_PATTERNS = [r"\bhow much\b", r"\bprice\b", r"\bcost\b", r"\bfare\b", r"\btotal\b"]
NAME_TRIGGERS = r"(?:my name is|my name's|name is|i am|i'm|this is|under the name|under|passenger name is|" \
                r"passenger is|lead passenger is|traveller is|traveler is|book it for|it'?s for)"
NOT_AIRLINES = {"on", "in", "at", "to", "by", "of", "or", "is", "it", "no", "so", "up", "we", "me", "my", "an", "as",
                "be", "do", "go", "he", "if", "us", "am", "pm", "id"}
NOT_NAMES = {"looking", "flying", "traveling", "travelling", "trying", "going", "interested", "planning", "ready",
             "sure", "not", "good", "fine", "happy", "okay", "ok", "sorry", "in", "from", "to", "the", "a", "flexible",
             "leaving", "heading", "hoping", "wondering", "just", "also", "still", "afraid", "booking", "thinking",
             "economy", "business", "first", "done", "all", "here", "back", "calling", "need", "want"}
#: Words that are never part of a person's name where text is read for one (the user's answer to the name question
#: here, the agent's claims in ``environment.claims``, which adds its own booking vocabulary).
NAME_STOP_WORDS = NOT_NAMES | set(MONTHS) | set(WEEKDAYS) | {
    "i", "it's", "its", "yes", "no", "please", "thanks", "thank", "hello", "hi", "dear", "mr", "mrs", "ms", "dr",
    "she's", "he's", "she", "he", "they", "they're", "we're", "i'm", "that's", "thats", "that", "here's", "there's",
    "great", "sounds"}


@dataclass
class ParsedMessage:
    """What one message says. ``None`` / empty means "not mentioned"."""

    origin: str | None = None
    destination: str | None = None
    airports: list[str] = field(default_factory=list)
    date: str | None = None
    cabin: str | None = None
    passengers: int | None = None
    passenger_name: str | None = None
    flight_numbers: list[str] = field(default_factory=list)
    option_index: int | None = None
    pressure: bool = False
    discount: bool = False
    confirm: bool = False
    cancel: bool = False
    goodbye: bool = False
    give_up: bool = False
    price_question: bool = False

    def slots(self) -> dict[str, object]:
        """The objective details this message states."""
        values = {"origin": self.origin, "destination": self.destination, "date": self.date, "cabin": self.cabin,
                  "passengers": self.passengers, "passenger_name": self.passenger_name}
        return {key: value for key, value in values.items() if value is not None}

    def ends_conversation(self, booked: bool) -> bool:
        """Whether this message ends the conversation: goodbye, giving up, or "cancel" with nothing booked (with a
        booking, "cancel" asks to cancel it), and nothing in it that moves the booking on. The one rule the
        booking agent and the environment share."""
        closing = self.goodbye or self.give_up or (self.cancel and not booked)
        return closing and not self.slots() and not self.confirm


def _any(patterns: list[str], text: str) -> bool:
    return any(re.search(pattern, text) for pattern in patterns)


@dataclass(frozen=True)
class DateMention:
    """One date written in a text: ``iso`` (YYYY-MM-DD), how it was written, and where.

    ``form`` is "iso" ("2026-12-03"), "month_day" ("December 3rd", "Dec. 3", "Thursday, December 3"), "day_month"
    ("3 December"), "slash" ("12/03"), "relative" ("tomorrow", "in 3 days", "today") or "weekday" ("Thursday",
    resolved to its next occurrence; a reader that knows the intended day may only trust its weekday).
    """

    iso: str
    form: str
    start: int


_DATE_FORMS: list[tuple[str, re.Pattern[str]]] = [
    ("iso", re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")),
    ("month_day", re.compile(rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s*(\d{{4}}))?")),
    ("day_month", re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\b(?:,?\s*(\d{{4}}))?")),
    ("slash", re.compile(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{4}))?\b")),
]
_RELATIVE_RE = re.compile(r"\b(?:(day after tomorrow)|(tomorrow)|(today|tonight)|"
                          r"in (\d{1,2}|one|two|three|four|five|six|seven|eight|nine) days)\b")
_WEEKDAY_RE = re.compile(rf"\b({'|'.join(WEEKDAYS)})\b")


def date_mentions(text: str, today: date) -> list[DateMention]:
    """Every date in ``text``, in the order :func:`parse_date` trusts them (explicit forms first, then relative
    words, then weekday names), and within a form in reading order. Invalid calendar dates are skipped. Reads the
    first ``MAX_AGENT_TEXT_CHARS`` characters."""
    lowered = str(text)[:MAX_AGENT_TEXT_CHARS].lower()
    mentions: list[DateMention] = []
    for form, pattern in _DATE_FORMS:
        for match in pattern.finditer(lowered):
            if form == "iso":
                iso = _safe_date(int(match[1]), int(match[2]), int(match[3]))
            elif form == "month_day":
                iso = _month_day(MONTHS[match[1]], int(match[2]), match[3], today)
            elif form == "day_month":
                iso = _month_day(MONTHS[match[2]], int(match[1]), match[3], today)
            else:
                iso = _month_day(int(match[1]), int(match[2]), match[3], today)
            if iso:
                mentions.append(DateMention(iso, form, match.start()))
    relative = []
    for match in _RELATIVE_RE.finditer(lowered):
        if match[1]:
            days = 2
        elif match[2]:
            days = 1
        elif match[3]:
            days = 0
        else:
            days = int(match[4]) if match[4].isdigit() else NUMBER_WORDS[match[4]]
        relative.append((0 if match[1] else 1 if match[2] else 2 if match[3] else 3, match.start(), days))
    for _, start, days in sorted(relative):  # the order parse_date has always tried them in
        mentions.append(DateMention((today + timedelta(days=days)).isoformat(), "relative", start))
    for match in sorted(_WEEKDAY_RE.finditer(lowered), key=lambda m: WEEKDAYS.index(m[1])):
        ahead = (WEEKDAYS.index(match[1]) - today.weekday()) % 7 or 7
        mentions.append(DateMention((today + timedelta(days=ahead)).isoformat(), "weekday", match.start()))
    return mentions


def parse_date(text: str, today: date) -> str | None:
    """The first date in ``text`` as YYYY-MM-DD: ISO, "Dec 3", "December 3rd", "3 December", "12/03",
    "today", "tomorrow", "day after tomorrow", "in N days", weekday names (next occurrence)."""
    mentions = date_mentions(str(text)[:MAX_PARSED_CHARS], today)
    return mentions[0].iso if mentions else None


def _safe_date(year: int, month: int, day: int) -> str | None:
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def _month_day(month: int, day: int, year: str | None, today: date) -> str | None:
    if year:
        return _safe_date(int(year), month, day)
    for candidate_year in (today.year, today.year + 1):  # the next such day on or after today
        candidate = _safe_date(candidate_year, month, day)
        if candidate and candidate >= today.isoformat():
            return candidate
    return None


_CABIN_FORMS = [("business", re.compile(r"\bbusiness\b")),
                ("first", re.compile(r"\bfirst[- ]class\b|\bin first\b|\bfirst cabin\b|\bclass:?\s+first\b")),
                ("economy", re.compile(r"\beconomy\b|\bcoach\b|\bmain cabin\b|\bcheapest seat"))]
_COUNT_WORDS = "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
# "3 seats left" / "2 tickets remaining" describe a flight, not the party.
_COUNT_RE = re.compile(rf"\b(\d{{1,2}}|{_COUNT_WORDS})\s+(?:passengers?|people|persons?|adults?|travell?ers?|tickets?|"
                       r"seats?|of us)\b(?!\s+(?:left|remaining|available|open)\b)")


def cabin_mentions(lowered: str) -> list[str]:
    """Every cabin named in lower-case text ("business", "first class", "coach"...), most specific first (reads the
    first ``MAX_AGENT_TEXT_CHARS`` characters)."""
    lowered = str(lowered)[:MAX_AGENT_TEXT_CHARS]
    return [cabin for cabin, pattern in _CABIN_FORMS if pattern.search(lowered)]


def parse_cabin(lowered: str) -> str | None:
    mentions = cabin_mentions(str(lowered)[:MAX_PARSED_CHARS])
    return mentions[0] if mentions else None


def passenger_count_mentions(lowered: str) -> list[int]:
    """Every party size written as a count ("2 passengers", "three adults", "4 travelers"), in reading order (reads
    the first ``MAX_AGENT_TEXT_CHARS`` characters)."""
    counts = []
    for match in _COUNT_RE.finditer(str(lowered)[:MAX_AGENT_TEXT_CHARS]):
        value = int(match[1]) if match[1].isdigit() else NUMBER_WORDS[match[1]]
        if value >= 1:
            counts.append(value)
    return counts


def parse_passengers(lowered: str) -> int | None:
    lowered = str(lowered)[:MAX_PARSED_CHARS]
    counts = passenger_count_mentions(lowered)
    if counts:
        return counts[0]
    if re.search(r"\b(just me|only me|myself|by myself|alone|solo|one person)\b", lowered):
        return 1
    if re.search(r"\b(me and my|my (wife|husband|partner|friend) and i|the two of us|both of us)\b", lowered):
        return 2
    return None


def parse_name(text: str) -> str | None:
    """A passenger name after a trigger phrase ("my name is Ann Lee", "under Ann Lee"): 1-3 capitalised words."""
    pattern = rf"{NAME_TRIGGERS}\s*:?\s+((?:[A-Z][\w'\-]*\.?)(?:\s+[A-Z][\w'\-]*\.?){{0,2}})"
    for match in re.finditer(pattern, str(text)[:MAX_PARSED_CHARS], flags=re.IGNORECASE):
        words = match[1].split()
        kept = []
        for word in words:
            if not word[0].isupper() or word.lower().strip(".") in NOT_NAMES or any(ch.isdigit() for ch in word):
                break
            kept.append(word.rstrip("."))
            if word.endswith(".") and len(word) > 2:  # "Tara. She's 19": a full stop, not an initial, ends it
                break
        if kept and not (len(kept) == 1 and len(kept[0]) <= 1):
            return " ".join(kept)
    return None


ASKED_DETAIL_PATTERNS: dict[str, list[str]] = {
    "origin": [r"\bwhere\b", r"\bfrom\b", r"\bdepart", r"\bleaving\b", r"\borigin\b", r"\broute\b"],
    "destination": [r"\bwhere\b", r"\bdestination\b", r"\bhead(ed|ing)\b", r"\bgoing\b", r"\barriv",
                    r"\b(fly|flying|travel\w*) to\b", r"\broute\b"],
    "date": [r"\bdates?\b", r"\bwhen\b", r"\b(what|which) day\b"],
    "passengers": [r"\bhow many\b", r"\bpassengers\b", r"\btravell?ers\b", r"\bpeople\b", r"\bparty\b"],
    "passenger_name": [r"\bnames?\b"],
    "cabin": [r"\bclass\b", r"\bcabin\b"],
}
_REQUEST_RE = re.compile(r"^\W*(please|kindly)?\s*(tell me|let me know|provide|share|give me|send me)\b")


def asked_details(agent_text: str) -> frozenset[str]:
    """Which objective details an agent message asks for, read from its questions ("When would you like to fly?"
    asks the date; "Where are you flying from?" the origin) and requests ("Please tell me your travel date."), in
    any agent's wording. Reads the first ``MAX_AGENT_TEXT_CHARS`` characters."""
    asked: set[str] = set()
    for sentence in _SENTENCE_END.split(str(agent_text)[:MAX_AGENT_TEXT_CHARS]):
        lowered = sentence.strip().lower()
        if not (lowered.endswith("?") or _REQUEST_RE.search(lowered)):
            continue
        asked.update(detail for detail, patterns in ASKED_DETAIL_PATTERNS.items() if _any(patterns, lowered))
    return frozenset(asked)


def asks_for_name(agent_text: str) -> bool:
    """Whether an agent message asks for a name, after which a bare name is an answer."""
    return "passenger_name" in asked_details(agent_text)


def parse_bare_name(text: str, airports: dict[str, str]) -> str | None:
    """A name given without a trigger phrase ("Tara Novak.", "It's Tara Novak please"), for when the agent has
    just asked for one: the first run of 2-3 capitalised words that are not a place, month, weekday or filler."""
    stop = NAME_STOP_WORDS
    places = {key for key in airports if len(key) > 3}
    run: list[str] = []
    for word in re.findall(r"[\w'\-]+|[.!?;]", str(text)[:300]):
        if word in ".!?;":  # a name does not run across sentences ("it's Tara. She's 19")
            if len(run) >= 2:
                break
            run = []
            continue
        clean = word.strip("'-")
        if clean[:1].isupper() and clean.lower() not in stop and not any(ch.isdigit() for ch in clean):
            run.append(clean)
            if len(run) == 3:
                break
        elif len(run) >= 2:
            break
        else:
            run = []
    if len(run) < 2 or any(place in " ".join(run).lower() for place in places):
        return None
    return " ".join(run)


def parse_message(text: str, airports: dict[str, str], today: date, answering: str = "") -> ParsedMessage:
    """Parse one user message. ``airports`` maps lower-case city names and IATA codes to codes; ``answering`` is the
    agent message it replies to (after a name question a bare "Tara Novak." is the passenger name)."""
    text = str(text)[:MAX_PARSED_CHARS]
    lowered = text.lower()
    parsed = ParsedMessage()
    mentions: list[tuple[int, str]] = []
    for key, code in airports.items():
        if len(key) == 3 and key.isalpha():  # IATA codes count only when written in capitals ("SEA", not "sea")
            for match in re.finditer(rf"\b{key.upper()}\b", text):
                mentions.append((match.start(), code))
        else:
            for match in re.finditer(rf"\b{re.escape(key)}\b", lowered):
                mentions.append((match.start(), code))
    mentions.sort()
    seen: list[str] = []
    for position, code in mentions:
        if code in seen:
            continue
        seen.append(code)
        before = lowered[max(0, position - 12):position]
        if re.search(r"\b(from|leaving|departing|out of)\s+$", before):
            parsed.origin = parsed.origin or code
        elif re.search(r"\b(to|into|arriving( in)?|towards?|for|visit(ing)?)\s+$", before):
            parsed.destination = parsed.destination or code
    parsed.airports = seen
    unassigned = [code for code in seen if code not in (parsed.origin, parsed.destination)]
    for code in unassigned:  # unmarked mentions fill the empty slots in reading order
        if parsed.origin is None and (parsed.destination is not None or len(unassigned) >= 2):
            parsed.origin = code
        elif parsed.destination is None and parsed.origin is not None and code != parsed.origin:
            parsed.destination = code
    parsed.date = parse_date(text, today)
    parsed.cabin = parse_cabin(lowered)
    parsed.passengers = parse_passengers(lowered)
    parsed.passenger_name = parse_name(text)
    parsed.flight_numbers = list(dict.fromkeys(
        m.upper() for m in re.findall(r"\b[A-Za-z][A-Za-z0-9]\d{2,4}\b", text)
        if m[:2].isupper() or m[:2].lower() not in NOT_AIRLINES))  # "AS7541" is Alaska; "at1030" is a time
    if match := re.search(r"\b(first|1st|second|2nd|third|3rd)\s+(one|option|flight)\b", lowered):
        parsed.option_index = ORDINALS[match[1]]
    elif match := re.search(r"\boption\s*#?\s*([1-3])\b|\bnumber\s*([1-3])\b", lowered):
        parsed.option_index = int(match[1] or match[2]) - 1
    elif re.search(r"\b(earliest|cheapest)\b", lowered):
        parsed.option_index = 0 if "earliest" in lowered else -1  # -1: the agent picks the cheapest
    elif re.search(r"\b(last|latest) (one|option|flight)\b", lowered):
        parsed.option_index = 2
    parsed.pressure = _any(PRESSURE_PATTERNS, lowered)
    parsed.discount = _any(DISCOUNT_PATTERNS, lowered)
    parsed.confirm = _any(CONFIRM_PATTERNS, lowered)
    parsed.cancel = _any(CANCEL_PATTERNS, lowered)
    parsed.goodbye = _any(GOODBYE_PATTERNS, lowered)
    parsed.give_up = _any(GIVE_UP_PATTERNS, lowered)
    parsed.price_question = _any(PRICE_QUESTION_PATTERNS, lowered)
    if parsed.passenger_name is None and asks_for_name(answering):
        parsed.passenger_name = parse_bare_name(text, airports)
    return parsed


def airport_lookup(airport_rows: list[dict[str, str]]) -> dict[str, str]:
    """Map lower-case city names and codes to IATA codes, from ``list_airports`` rows."""
    lookup: dict[str, str] = {}
    for row in airport_rows:
        lookup[row["code"].lower()] = row["code"]
        lookup[row["city"].lower()] = row["code"]
    return lookup
