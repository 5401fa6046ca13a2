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
DENY_PATTERNS = [r"^\s*(no|nope|nah)\b", r"\bnot that\b", r"\bwait\b", r"\bhold on\b"]
CANCEL_PATTERNS = [r"\bcancel\b", r"\bcancellation\b"]
GOODBYE_PATTERNS = [r"\b(good)?bye\b", r"\bthank(s| you)\b", r"\bthat'?s all\b", r"\bthat is all\b",
                    r"\bhave a (good|nice|great)\b", r"\bsee you\b"]
GIVE_UP_PATTERNS = [r"\bnever ?mind\b", r"\bforget (it|about it)\b", r"\bgive up\b", r"\blook elsewhere\b",
                    r"\bno longer need\b", r"\bnot interested\b", r"\bi'?ll pass\b"]
PRICE_QUESTION_PATTERNS = [r"\bhow much\b", r"\bprice\b", r"\bcost\b", r"\bfare\b", r"\btotal\b"]
CHANGE_PATTERNS = [r"\bactually\b", r"\bchange\b", r"\binstead\b", r"\bswitch\b", r"\brather\b", r"\bmake it\b"]
NAME_TRIGGERS = r"(?:my name is|my name's|name is|i am|i'm|this is|under the name|under|passenger name is|" \
                r"passenger is|lead passenger is|traveller is|traveler is|book it for|it'?s for)"
NOT_AIRLINES = {"on", "in", "at", "to", "by", "of", "or", "is", "it", "no", "so", "up", "we", "me", "my", "an", "as",
                "be", "do", "go", "he", "if", "us", "am", "pm", "id"}
NOT_NAMES = {"looking", "flying", "traveling", "travelling", "trying", "going", "interested", "planning", "ready",
             "sure", "not", "good", "fine", "happy", "okay", "ok", "sorry", "in", "from", "to", "the", "a", "flexible",
             "leaving", "heading", "hoping", "wondering", "just", "also", "still", "afraid", "booking", "thinking",
             "economy", "business", "first", "done", "all", "here", "back", "calling", "need", "want"}


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
    deny: bool = False
    cancel: bool = False
    goodbye: bool = False
    give_up: bool = False
    price_question: bool = False
    change: bool = False

    def slots(self) -> dict[str, object]:
        """The objective details this message states."""
        values = {"origin": self.origin, "destination": self.destination, "date": self.date, "cabin": self.cabin,
                  "passengers": self.passengers, "passenger_name": self.passenger_name}
        return {key: value for key, value in values.items() if value is not None}


def _any(patterns: list[str], text: str) -> bool:
    return any(re.search(pattern, text) for pattern in patterns)


def parse_date(text: str, today: date) -> str | None:
    """The first date in ``text`` as YYYY-MM-DD: ISO, "Dec 3", "December 3rd", "3 December", "12/03",
    "today", "tomorrow", "day after tomorrow", "in N days", weekday names (next occurrence)."""
    lowered = str(text)[:MAX_PARSED_CHARS].lower()
    if match := re.search(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", lowered):
        return _safe_date(int(match[1]), int(match[2]), int(match[3]))
    if match := re.search(rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s*(\d{{4}}))?", lowered):
        return _month_day(MONTHS[match[1]], int(match[2]), match[3], today)
    if match := re.search(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\b(?:,?\s*(\d{{4}}))?", lowered):
        return _month_day(MONTHS[match[2]], int(match[1]), match[3], today)
    if match := re.search(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{4}))?\b", lowered):
        return _month_day(int(match[1]), int(match[2]), match[3], today)
    if "day after tomorrow" in lowered:
        return (today + timedelta(days=2)).isoformat()
    if re.search(r"\btomorrow\b", lowered):
        return (today + timedelta(days=1)).isoformat()
    if re.search(r"\btoday\b|\btonight\b", lowered):
        return today.isoformat()
    if match := re.search(r"\bin (\d{1,2}|one|two|three|four|five|six|seven|eight|nine) days\b", lowered):
        days = int(match[1]) if match[1].isdigit() else NUMBER_WORDS[match[1]]
        return (today + timedelta(days=days)).isoformat()
    for index, weekday in enumerate(WEEKDAYS):
        if re.search(rf"\b{weekday}\b", lowered):
            ahead = (index - today.weekday()) % 7 or 7
            return (today + timedelta(days=ahead)).isoformat()
    return None


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


def parse_cabin(lowered: str) -> str | None:
    lowered = str(lowered)[:MAX_PARSED_CHARS]
    if re.search(r"\bbusiness\b", lowered):
        return "business"
    if re.search(r"\bfirst[- ]class\b|\bin first\b|\bfirst cabin\b", lowered):
        return "first"
    if re.search(r"\beconomy\b|\bcoach\b|\bmain cabin\b|\bcheapest seat", lowered):
        return "economy"
    return None


def parse_passengers(lowered: str) -> int | None:
    lowered = str(lowered)[:MAX_PARSED_CHARS]
    words = "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
    noun = r"(?:passengers?|people|persons?|adults?|travell?ers?|tickets?|seats?|of us)"
    if match := re.search(rf"\b(\d{{1,2}}|{words})\s+{noun}\b", lowered):
        value = int(match[1]) if match[1].isdigit() else NUMBER_WORDS[match[1]]
        return value if value >= 1 else None
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
        if kept and not (len(kept) == 1 and len(kept[0]) <= 1):
            return " ".join(kept)
    return None


def asks_for_name(agent_text: str) -> bool:
    """Whether an agent message asks for a name (a question sentence containing "name"), after which a bare name
    is an answer. Reads the first ``MAX_AGENT_TEXT_CHARS`` characters."""
    sentences = _SENTENCE_END.split(str(agent_text)[:MAX_AGENT_TEXT_CHARS])
    return any(sentence.endswith("?") and "name" in sentence.lower() for sentence in sentences)


def parse_bare_name(text: str, airports: dict[str, str]) -> str | None:
    """A name given without a trigger phrase ("Tara Novak.", "It's Tara Novak please"), for when the agent has
    just asked for one: the first run of 2-3 capitalised words that are not a place, month, weekday or filler."""
    stop = NOT_NAMES | set(MONTHS) | set(WEEKDAYS) | {"i", "it's", "its", "yes", "no", "please", "thanks", "thank",
                                                      "hello", "hi", "dear", "mr", "mrs", "ms", "dr"}
    places = {key for key in airports if len(key) > 3}
    run: list[str] = []
    for word in re.findall(r"[\w'\-]+", str(text)[:300]):
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
        m.upper() for m in re.findall(r"\b[A-Za-z][A-Za-z0-9]\d{2,4}\b", text) if m[:2].lower() not in NOT_AIRLINES))
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
    parsed.deny = _any(DENY_PATTERNS, lowered) and not parsed.confirm
    parsed.cancel = _any(CANCEL_PATTERNS, lowered)
    parsed.goodbye = _any(GOODBYE_PATTERNS, lowered)
    parsed.give_up = _any(GIVE_UP_PATTERNS, lowered)
    parsed.price_question = _any(PRICE_QUESTION_PATTERNS, lowered)
    parsed.change = _any(CHANGE_PATTERNS, lowered)
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
