"""The sentence a shopper reads for a KSS ``delivery_time`` object.

This module owns the wording of the delivery promise: it validates a ``delivery_time`` JSON object
(``cutoff``, ``earliest``, ``latest``, ``interval{earliest, latest, utc_offset_in_seconds}``,
``time_of_day{earliest, latest}``) and renders it exactly as PROTOCOL.md ("delivery_time") says KSS
shows it, in English and in the Nordic, German and Dutch languages. Computing a promise is
``tms_server.calendar``'s job; this module only says it.

Decisions where the protocol is silent:

- Both families present: the dates win while at least one of ``earliest``/``latest`` is still in the
  future; once both are past (or absent) the interval is said instead. Families are never mixed.
- ``interval.earliest == interval.latest`` says "in N business days" rather than "in N-N", and a
  count of one is singular ("after 1 business day").
- A ``time_of_day`` needs both ends; ``cutoff`` or ``time_of_day`` alone say nothing (``None``).
- ``interval.utc_offset_in_seconds`` is validated but not used: the ``tz`` argument (the recipient's
  zone) is more precise across DST changes than one fixed offset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import attrs
from babel.dates import format_date

from tms_server.calendar import require_aware, zone_info

__all__ = ["LANGUAGES", "language_of", "render"]


@attrs.frozen
class _Phrases:
    """One language's wording; the ``{...}`` holes are counts, dates and clock times."""

    after: tuple[str, str]  # (count of one, any other count)
    within: tuple[str, str]
    exactly: tuple[str, str]
    in_range: str
    interval_window: str
    at_the_earliest: str
    no_later_than: str
    between: str
    on: str
    dates_window: str
    cutoff: str
    today: str
    tomorrow: str
    # Babel pattern for weekday, day and month; the year is never said.
    date_pattern: str
    # How an absolute date stands after a verb or adverb (German "frühestens am Montag, 6. April");
    # "between" and the words for today/tomorrow never take it.
    on_date: str = "{date}"
    time_separator: str = ":"


# Reviewed by hand; English is PROTOCOL.md's wording verbatim. Finnish needs the essive weekday
# ("torstaina 5. maaliskuuta"), which is CLDR's format-context weekday ("EEEE") except for Sunday
# (see _format_date).
_PHRASES: Final[Mapping[str, _Phrases]] = {
    "en": _Phrases(
        after=("Delivered after {n} business day", "Delivered after {n} business days"),
        within=("Delivered within {n} business day", "Delivered within {n} business days"),
        exactly=("Delivered in {n} business day", "Delivered in {n} business days"),
        in_range="Delivered in {e}-{l} business days",
        interval_window=" between ca. {start} and {end}",
        at_the_earliest="Delivered {d} at the earliest",
        no_later_than="Delivered no later than {d}",
        between="Delivered between {d1} and {d2}",
        on="Delivered {d}",
        dates_window=", from {start} to {end}",
        cutoff=", if ordered before {t}",
        today="today",
        tomorrow="tomorrow",
        date_pattern="EEEE, MMMM d",
    ),
    "sv": _Phrases(
        after=("Levereras efter {n} arbetsdag", "Levereras efter {n} arbetsdagar"),
        within=("Levereras inom {n} arbetsdag", "Levereras inom {n} arbetsdagar"),
        exactly=("Levereras om {n} arbetsdag", "Levereras om {n} arbetsdagar"),
        in_range="Levereras om {e}-{l} arbetsdagar",
        interval_window=" mellan ca. {start} och {end}",
        at_the_earliest="Levereras tidigast {d}",
        no_later_than="Levereras senast {d}",
        between="Levereras mellan {d1} och {d2}",
        on="Levereras {d}",
        dates_window=", kl. {start}–{end}",
        cutoff=", om du beställer före {t}",
        today="idag",
        tomorrow="imorgon",
        date_pattern="EEEE d MMMM",
    ),
    "nb": _Phrases(
        after=("Leveres etter {n} virkedag", "Leveres etter {n} virkedager"),
        within=("Leveres innen {n} virkedag", "Leveres innen {n} virkedager"),
        exactly=("Leveres om {n} virkedag", "Leveres om {n} virkedager"),
        in_range="Leveres om {e}-{l} virkedager",
        interval_window=" mellom ca. kl. {start} og {end}",
        at_the_earliest="Leveres tidligst {d}",
        no_later_than="Leveres senest {d}",
        between="Leveres mellom {d1} og {d2}",
        on="Leveres {d}",
        dates_window=", fra kl. {start} til {end}",
        cutoff=", hvis du bestiller før kl. {t}",
        today="i dag",
        tomorrow="i morgen",
        date_pattern="EEEE d. MMMM",
    ),
    "da": _Phrases(
        after=("Leveres efter {n} hverdag", "Leveres efter {n} hverdage"),
        within=("Leveres inden for {n} hverdag", "Leveres inden for {n} hverdage"),
        exactly=("Leveres om {n} hverdag", "Leveres om {n} hverdage"),
        in_range="Leveres om {e}-{l} hverdage",
        interval_window=" ca. mellem kl. {start} og {end}",
        at_the_earliest="Leveres tidligst {d}",
        no_later_than="Leveres senest {d}",
        between="Leveres mellem {d1} og {d2}",
        on="Leveres {d}",
        dates_window=", fra kl. {start} til {end}",
        cutoff=", hvis du bestiller inden kl. {t}",
        today="i dag",
        tomorrow="i morgen",
        date_pattern="EEEE 'den' d. MMMM",
        time_separator=".",
    ),
    "fi": _Phrases(
        after=("Toimitetaan {n} arkipäivän kuluttua", "Toimitetaan {n} arkipäivän kuluttua"),
        within=("Toimitetaan {n} arkipäivän kuluessa", "Toimitetaan {n} arkipäivän kuluessa"),
        exactly=("Toimitetaan {n} arkipäivässä", "Toimitetaan {n} arkipäivässä"),
        in_range="Toimitetaan {e}-{l} arkipäivässä",
        interval_window=" noin klo {start}–{end}",
        at_the_earliest="Toimitetaan aikaisintaan {d}",
        no_later_than="Toimitetaan viimeistään {d}",
        between="Toimitetaan {d1} – {d2}",
        on="Toimitetaan {d}",
        dates_window=", klo {start}–{end}",
        cutoff=", jos tilaat ennen klo {t}",
        today="tänään",
        tomorrow="huomenna",
        date_pattern="EEEE d. MMMM",
        time_separator=".",
    ),
    "de": _Phrases(
        after=("Lieferung nach {n} Werktag", "Lieferung nach {n} Werktagen"),
        within=("Lieferung innerhalb von {n} Werktag", "Lieferung innerhalb von {n} Werktagen"),
        exactly=("Lieferung in {n} Werktag", "Lieferung in {n} Werktagen"),
        in_range="Lieferung in {e}-{l} Werktagen",
        interval_window=" zwischen ca. {start} und {end} Uhr",
        at_the_earliest="Lieferung frühestens {d}",
        no_later_than="Lieferung spätestens {d}",
        between="Lieferung zwischen {d1} und {d2}",
        on="Lieferung {d}",
        dates_window=", von {start} bis {end} Uhr",
        cutoff=", bei Bestellung vor {t} Uhr",
        today="heute",
        tomorrow="morgen",
        date_pattern="EEEE, d. MMMM",
        on_date="am {date}",
    ),
    "nl": _Phrases(
        after=("Bezorging na {n} werkdag", "Bezorging na {n} werkdagen"),
        within=("Bezorging binnen {n} werkdag", "Bezorging binnen {n} werkdagen"),
        exactly=("Bezorging in {n} werkdag", "Bezorging in {n} werkdagen"),
        in_range="Bezorging in {e}-{l} werkdagen",
        interval_window=" tussen ca. {start} en {end}",
        at_the_earliest="Bezorging op zijn vroegst {d}",
        no_later_than="Bezorging uiterlijk {d}",
        between="Bezorging tussen {d1} en {d2}",
        on="Bezorging {d}",
        dates_window=", van {start} tot {end}",
        cutoff=", bij bestelling vóór {t}",
        today="vandaag",
        tomorrow="morgen",
        date_pattern="EEEE d MMMM",
        on_date="op {date}",
    ),
}

LANGUAGES: Final[frozenset[str]] = frozenset(_PHRASES)
# Norwegian is written Bokmål in checkouts; "no" is what most shops send, "nn" falls back to it too.
_LANGUAGE_ALIASES: Final[Mapping[str, str]] = {"no": "nb", "nn": "nb"}

_RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_COUNT: Final = re.compile(r"[0-9]{1,4}")
_OFFSET: Final = re.compile(r"[+-]?[0-9]{1,5}")
_MAX_COUNT: Final = 9999
_MAX_OFFSET_SECONDS: Final = 24 * 3600


@attrs.frozen
class _Promise:
    """A validated delivery_time object; absent fields are None."""

    cutoff: datetime | None
    earliest: datetime | None
    latest: datetime | None
    interval_earliest: int | None
    interval_latest: int | None
    window: tuple[datetime, datetime] | None


@attrs.frozen
class _Speaker:
    """What rendering needs besides the promise: the moment, the recipient's zone and language."""

    now: datetime
    zone: ZoneInfo
    language: str

    @property
    def phrases(self) -> _Phrases:
        return _PHRASES[self.language]

    @property
    def today(self) -> date:
        return self.now.astimezone(self.zone).date()

    def day_of(self, instant: datetime) -> date:
        return instant.astimezone(self.zone).date()

    def clock(self, instant: datetime) -> str:
        local = instant.astimezone(self.zone)
        return f"{local.hour}{self.phrases.time_separator}{local.minute:02d}"

    def say_date(self, day: date, *, standalone: bool) -> str:
        if day == self.today:
            return self.phrases.today
        if day == self.today + timedelta(days=1):
            return self.phrases.tomorrow
        text = _format_date(day, self.phrases.date_pattern, self.language)
        return self.phrases.on_date.format(date=text) if standalone else text


def _format_date(day: date, pattern: str, language: str) -> str:
    text = str(format_date(day, pattern, locale=language))
    # CLDR gives Finnish weekdays in the essive ("maanantaina") but Sunday as bare "sunnuntai".
    if language == "fi" and text.startswith("sunnuntai "):
        text = "sunnuntaina" + text.removeprefix("sunnuntai")
    return text


def language_of(locale: str) -> str:
    """The phrase table for a locale such as "sv-SE", "sv_SE" or "de"; English when unknown."""
    language = re.split(r"[-_]", locale.strip(), maxsplit=1)[0].lower()
    language = _LANGUAGE_ALIASES.get(language, language)
    return language if language in _PHRASES else "en"


def render(
    delivery_time: Mapping[str, Any], *, now: datetime, tz: str | ZoneInfo, locale: str = "en"
) -> str | None:
    """The sentence KSS shows for ``delivery_time``, or None when nothing is left to say.

    Raises ValueError naming the field when the object is malformed.
    """
    require_aware(now)
    speaker = _Speaker(now=now, zone=zone_info(tz, "tz"), language=language_of(locale))
    promise = _parse(delivery_time)
    earliest = promise.earliest if promise.earliest is not None and promise.earliest > now else None
    latest = promise.latest if promise.latest is not None and promise.latest > now else None
    phrases = speaker.phrases
    if earliest is not None or latest is not None:
        sentence = _date_sentence(speaker, earliest, latest)
        window_template = phrases.dates_window
    elif promise.interval_earliest is not None or promise.interval_latest is not None:
        sentence = _interval_sentence(phrases, promise.interval_earliest, promise.interval_latest)
        window_template = phrases.interval_window
    else:
        return None
    if promise.window is not None:
        start, end = (speaker.clock(instant) for instant in promise.window)
        sentence += window_template.format(start=start, end=end)
    if promise.cutoff is not None and promise.cutoff > now:
        sentence += phrases.cutoff.format(t=speaker.clock(promise.cutoff))
    return sentence


def _interval_sentence(phrases: _Phrases, earliest: int | None, latest: int | None) -> str:
    def counted(templates: tuple[str, str], n: int) -> str:
        return templates[0 if n == 1 else 1].format(n=n)

    if earliest is not None and latest is not None:
        if earliest == latest:
            return counted(phrases.exactly, earliest)
        return phrases.in_range.format(e=earliest, l=latest)
    if earliest is not None:
        return counted(phrases.after, earliest)
    assert latest is not None  # the caller checked that one of them is there
    return counted(phrases.within, latest)


def _date_sentence(speaker: _Speaker, earliest: datetime | None, latest: datetime | None) -> str:
    phrases = speaker.phrases
    first = speaker.day_of(earliest) if earliest is not None else None
    last = speaker.day_of(latest) if latest is not None else None
    if first is not None and last is not None:
        if first == last:
            return phrases.on.format(d=speaker.say_date(first, standalone=True))
        return phrases.between.format(
            d1=speaker.say_date(first, standalone=False), d2=speaker.say_date(last, standalone=False)
        )
    if first is not None:
        return phrases.at_the_earliest.format(d=speaker.say_date(first, standalone=True))
    assert last is not None  # the caller checked that one of them is there
    if last == speaker.today:
        # "Delivered no later than today" says no more than "Delivered today".
        return phrases.on.format(d=phrases.today)
    return phrases.no_later_than.format(d=speaker.say_date(last, standalone=True))


# ---------------------------------------------------------------- validation of the JSON object


def _parse(delivery_time: Any) -> _Promise:
    path = "delivery_time"
    if not isinstance(delivery_time, Mapping):
        raise ValueError(f"{path}: expected object, got {_got(delivery_time)}")
    interval = _object(delivery_time.get("interval"), f"{path}.interval")
    window = _object(delivery_time.get("time_of_day"), f"{path}.time_of_day")
    promise = _Promise(
        cutoff=_instant(delivery_time.get("cutoff"), f"{path}.cutoff"),
        earliest=_instant(delivery_time.get("earliest"), f"{path}.earliest"),
        latest=_instant(delivery_time.get("latest"), f"{path}.latest"),
        interval_earliest=_count(interval.get("earliest"), f"{path}.interval.earliest"),
        interval_latest=_count(interval.get("latest"), f"{path}.interval.latest"),
        window=_window(window, f"{path}.time_of_day"),
    )
    _offset(interval.get("utc_offset_in_seconds"), f"{path}.interval.utc_offset_in_seconds")
    _check_order(promise)
    return promise


def _check_order(promise: _Promise) -> None:
    first, last = promise.interval_earliest, promise.interval_latest
    if first is not None and last is not None and first > last:
        raise ValueError(f"delivery_time.interval.earliest: {first} is greater than interval.latest {last}")
    if promise.earliest is not None and promise.latest is not None and promise.earliest > promise.latest:
        raise ValueError("delivery_time.earliest: after delivery_time.latest")


def _object(value: Any, path: str) -> Mapping[str, Any]:
    """A nested object; absent or null reads as empty."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{path}: expected object, got {_got(value)}")
    return value


def _window(window: Mapping[str, Any], path: str) -> tuple[datetime, datetime] | None:
    start = _instant(window.get("earliest"), f"{path}.earliest")
    end = _instant(window.get("latest"), f"{path}.latest")
    if start is None and end is None:
        return None
    if start is None or end is None:
        missing = "earliest" if start is None else "latest"
        raise ValueError(f"{path}.{missing}: required when time_of_day is given")
    return start, end


def _instant(value: Any, path: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(f"{path}: expected RFC 3339 date-time, got {_got(value)}")
    try:
        instant = datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError as exc:
        raise ValueError(f"{path}: not a valid date-time: {value!r}") from exc
    # Keep a day of margin at both ends of datetime's range so local-zone arithmetic cannot overflow.
    if not 1 < instant.year < 9999:
        raise ValueError(f"{path}: date-time out of range: {value!r}")
    return instant.astimezone(UTC)


def _count(value: Any, path: str) -> int | None:
    """A business-day count: a non-negative integer, or a string of digits as in the KSS examples."""
    if value is None:
        return None
    if isinstance(value, str) and _COUNT.fullmatch(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_COUNT:
        return value
    raise ValueError(f"{path}: expected integer from 0 to {_MAX_COUNT}, got {_got(value)}")


def _offset(value: Any, path: str) -> int | None:
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, str) and _OFFSET.fullmatch(value):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    if number is None or abs(number) > _MAX_OFFSET_SECONDS:
        raise ValueError(f"{path}: expected integer seconds within ±1 day, got {_got(value)}")
    return number


def _got(value: Any) -> str:
    """Describe a rejected value in JSON terms, briefly."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "...")
    if isinstance(value, float) or (isinstance(value, int) and abs(value) < 10**15):
        return repr(value)
    if isinstance(value, int):
        return "a very large integer"  # repr() of a huge int is itself refused by Python
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__
