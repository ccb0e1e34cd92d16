"""Service deadlines: when a claim must get its first human answer and its decision.

The service norms (after-sales customer service for parcel delivery):

- a claim is acknowledged at once (the API does that; there is nothing to compute);
- a claim that enters review gets a first answer from a person within 1 hour of *working* time;
- a simple claim (declared value under a per-currency band) is decided within 24 hours, wall-clock;
- every damage claim is decided by the end of the 5th working day after the day it was submitted.

Working days and hours, public holidays and make-up working days (China moves weekend days around
its holidays, so a Saturday can be a working day) are configuration: a versioned
:class:`DeadlineConfig`, read from TOML by :func:`parse_deadlines`.

Pure functions, like the rest of ``claims``: ``now`` is passed in, the caller reads the file. Times
come in and go out as timezone-aware datetimes in UTC; working hours are local wall-clock times in
the configured IANA zone, so every computation converts to that zone to decide *which* hours count
and measures elapsed time in UTC, so a daylight-saving change (none in China, but the zone is
configurable) never adds or loses an hour. Naive datetimes are refused with ValueError: a naive
time would silently mean the server's zone.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from claims.money import CURRENCIES, MoneyError, is_on_minor_unit, parse_currency, toml_decimal

# The deadline file shipped with the code. Computing a path is not I/O; the caller reads the file.
DEFAULT_DEADLINES_FILE = Path(__file__).resolve().parent / "policies" / "deadlines-2026-11-v1.toml"

# Limits on knobs that have no natural bound, to catch a typo (minutes written where hours were meant).
MAX_FIRST_RESPONSE = timedelta(days=7)
MAX_SIMPLE_DECISION = timedelta(days=30)
MAX_DECISION_WORKING_DAYS = 60

# How many days in a row without working time a search may cross before giving up. The longest
# Chinese holiday run with its weekends is 9-10 days; a year without a working day is a broken
# calendar (a holiday list that swallows every working day), and looping forever is worse than an error.
MAX_DAYS_WITHOUT_WORK = 366

# ISO weekday numbers, as written in the TOML file: 1 = Monday ... 7 = Sunday.
ISO_WEEKDAYS = range(1, 8)
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class DeadlineConfigError(ValueError):
    """A deadline configuration (or deadline file) that cannot be used, with what is wrong in it."""


# --------------------------------------------------------------------------------------------------
# Configuration


def _default_band() -> Mapping[str, Decimal]:
    return {"CNY": Decimal("500")}


def _check_date(name: str, value: object) -> date:
    # A datetime is a date too, but it never equals one: a holiday given as a datetime would silently
    # never match any day. Refuse it.
    if isinstance(value, datetime) or not isinstance(value, date):
        raise DeadlineConfigError(f"{name}: {value!r} is not a date")
    return value


def _check_dates(name: str, value: object) -> frozenset[date]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise DeadlineConfigError(f"{name} must be a set of dates, got {value!r}")
    return frozenset(_check_date(name, d) for d in value)


@dataclass(frozen=True)
class DeadlineConfig:
    """Every knob of the service deadlines, under one version that a claim's deadlines can record.

    - `timezone`: the IANA zone working hours and days are reckoned in.
    - `working_days`: ISO weekday numbers (1 = Monday ... 7 = Sunday) that are normally worked. ISO
      and not Python's 0-based ``weekday()``, because people write the file; 0 is refused, which
      also catches a 0-based list.
    - `working_hours`: (start, end) local wall-clock times; a working day is worked from start
      (inclusive) to end (exclusive). No overnight shifts: start < end.
    - `holidays`: dates that are not worked although their weekday is (public holidays). A holiday
      on a weekend is allowed (official notices list whole runs, weekends included) and changes nothing.
    - `extra_working_days`: make-up working days on days not normally worked (China's 调休: a
      Saturday or Sunday worked to bridge a holiday). A date that is already a working day, or is
      also a holiday, is refused: it is a typo, and which of the two should win would be a guess.
    - `first_response`: working time from entering review to a person's first answer.
    - `simple_claim_value_band`: per currency, claims with a declared value strictly below it are
      simple. A currency without a band has no simple claims (nobody decided what is "small").
    - `simple_decision`: wall-clock time from submission to the decision of a simple claim.
    - `damage_decision_working_days`: every claim is decided by the end of this many working days
      after the day it was submitted.

    Validated on construction; a DeadlineConfigError says which knob is wrong. Collections are
    frozen and the band is a read-only view, so a config cannot change under a recorded version.
    """

    version: str
    timezone: str = "Asia/Shanghai"
    working_days: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    working_hours: tuple[time, time] = (time(9, 0), time(18, 0))
    holidays: frozenset[date] = frozenset()
    extra_working_days: frozenset[date] = frozenset()
    first_response: timedelta = timedelta(hours=1)
    simple_claim_value_band: Mapping[str, Decimal] = field(default_factory=_default_band)
    simple_decision: timedelta = timedelta(hours=24)
    damage_decision_working_days: int = 5

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        if not isinstance(self.version, str) or not self.version.strip():
            raise DeadlineConfigError(f"version must be a non-empty string, got {self.version!r}")

        if not isinstance(self.timezone, str) or not self.timezone:
            raise DeadlineConfigError(f"timezone must be an IANA zone name, got {self.timezone!r}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise DeadlineConfigError(
                f"timezone {self.timezone!r} is not a known IANA zone name (such as 'Asia/Shanghai')"
            ) from None

        days = self.working_days
        if isinstance(days, str | bytes) or not isinstance(days, Iterable):
            raise DeadlineConfigError(f"working_days must be a set of ISO weekday numbers, got {days!r}")
        days = frozenset(days)
        for d in days:
            if isinstance(d, bool) or not isinstance(d, int) or d not in ISO_WEEKDAYS:
                raise DeadlineConfigError(
                    f"working_days: {d!r} is not an ISO weekday number (1 = Monday ... 7 = Sunday)"
                )
        if not days:
            raise DeadlineConfigError("working_days must list at least one weekday")
        put("working_days", days)

        given = self.working_hours
        if isinstance(given, str | bytes) or not isinstance(given, Iterable):
            raise DeadlineConfigError(f"working_hours must be (start, end), got {given!r}")
        hours = tuple(given)
        if len(hours) != 2 or not all(isinstance(t, time) for t in hours):
            raise DeadlineConfigError(f"working_hours must be two times (start, end), got {hours!r}")
        if any(t.tzinfo is not None for t in hours):
            raise DeadlineConfigError("working_hours are local wall-clock times: give them without a zone")
        if not hours[0] < hours[1]:
            raise DeadlineConfigError(
                f"working_hours must start before they end (no overnight shifts), got "
                f"{hours[0].isoformat()}-{hours[1].isoformat()}"
            )
        put("working_hours", hours)

        holidays = _check_dates("holidays", self.holidays)
        extra = _check_dates("extra_working_days", self.extra_working_days)
        for day in sorted(extra):
            if day in holidays:
                raise DeadlineConfigError(f"{day} is both a holiday and an extra working day")
            if day.isoweekday() in days:
                raise DeadlineConfigError(
                    f"extra_working_days: {day} is a {WEEKDAY_NAMES[day.weekday()]}, already a working day"
                )
        put("holidays", holidays)
        put("extra_working_days", extra)

        for name, limit in (("first_response", MAX_FIRST_RESPONSE), ("simple_decision", MAX_SIMPLE_DECISION)):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or not timedelta(0) < value <= limit:
                raise DeadlineConfigError(
                    f"{name} must be a timedelta above 0 and at most {limit}, got {value!r}"
                )

        band = self.simple_claim_value_band
        if not isinstance(band, Mapping):
            raise DeadlineConfigError(
                f"simple_claim_value_band must be a mapping of currency code to amount, got {band!r}"
            )
        out: dict[str, Decimal] = {}
        for code, amount in band.items():
            if not isinstance(code, str) or code not in CURRENCIES:
                raise DeadlineConfigError(
                    f"simple_claim_value_band: {code!r} is not an active ISO 4217 code in upper case"
                )
            # Ints are exact; floats are refused (by the time a float exists, what was written is lost).
            if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
                raise DeadlineConfigError(
                    f"simple_claim_value_band.{code} must be a Decimal (or an int), got {amount!r}"
                )
            amount = Decimal(amount)
            if not amount.is_finite() or amount <= 0:
                raise DeadlineConfigError(f"simple_claim_value_band.{code} must be above 0, got {amount}")
            if not is_on_minor_unit(amount, code):
                raise DeadlineConfigError(
                    f"simple_claim_value_band.{code} has more decimal places than {code} allows: {amount}"
                )
            out[code] = amount
        put("simple_claim_value_band", MappingProxyType(out))

        n = self.damage_decision_working_days
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_DECISION_WORKING_DAYS:
            raise DeadlineConfigError(
                f"damage_decision_working_days must be a whole number 1-{MAX_DECISION_WORKING_DAYS}, got {n!r}"
            )

    @property
    def zone(self) -> ZoneInfo:
        """The configured zone (zoneinfo caches it, so asking again is cheap)."""
        return ZoneInfo(self.timezone)

    def __hash__(self) -> int:
        # The generated hash would fail on the band mapping; hash its items instead.
        return hash(
            (
                self.version,
                self.timezone,
                self.working_days,
                self.working_hours,
                self.holidays,
                self.extra_working_days,
                self.first_response,
                frozenset(self.simple_claim_value_band.items()),
                self.simple_decision,
                self.damage_decision_working_days,
            )
        )


_TIME_TEXT = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])", re.ASCII)
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_DEADLINE_KEYS = frozenset(
    {
        "version",
        "timezone",
        "working_days",
        "working_hours",
        "holidays",
        "extra_working_days",
        "first_response_working_minutes",
        "simple_claim_value_band",
        "simple_decision_hours",
        "damage_decision_working_days",
    }
)


def _toml_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DeadlineConfigError(f"{name} must be a whole number, got {value!r}")
    return value


def _toml_list(name: str, value: object) -> list[Any]:
    if not isinstance(value, list):
        raise DeadlineConfigError(f"{name} must be a list, got {value!r}")
    return value


def _toml_time(name: str, value: object) -> time:
    """A time from "HH:MM" text or a TOML local time (09:00:00)."""
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        m = _TIME_TEXT.fullmatch(value.strip())
        if m:
            return time(int(m[1]), int(m[2]))
    raise DeadlineConfigError(f'{name} must be a time written as "HH:MM" (such as "09:00"), got {value!r}')


def _toml_date(name: str, value: object) -> date:
    """A date from a TOML local date (2026-10-01) or ISO text ("2026-10-01"). Only YYYY-MM-DD: the
    other forms ``date.fromisoformat`` takes ("20261001", week dates) are too easy to get wrong."""
    if isinstance(value, datetime):
        raise DeadlineConfigError(f"{name}: {value!r} is a date and time; give the date only")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE_TEXT.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise DeadlineConfigError(f"{name}: {value!r} is not a date (write 2026-10-01)")


def _toml_dates(name: str, value: object) -> frozenset[date]:
    dates = [_toml_date(name, v) for v in _toml_list(name, value)]
    seen: set[date] = set()
    for d in dates:
        if d in seen:
            raise DeadlineConfigError(f"{name} lists {d} twice")
        seen.add(d)
    return frozenset(dates)


def _toml_decimal(name: str, value: object) -> Decimal:
    return toml_decimal(name, value, error=DeadlineConfigError, what="an amount", example="500", signed=False)


def parse_deadlines(text: str) -> DeadlineConfig:
    """A DeadlineConfig from the text of a TOML deadline file (the caller reads the file).

    Every key must be present: the file is the complete record of what a version promised customers,
    so nothing silently falls back to a default in code that may change later. Unknown keys are
    refused (a typo would otherwise be ignored), and so are duplicate dates. Times are "HH:MM"
    strings (or TOML local times), dates TOML dates or "YYYY-MM-DD" strings, durations whole numbers
    in the unit their key names, amounts strings or integers, never floats. Raises DeadlineConfigError.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DeadlineConfigError(f"deadline file is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - _DEADLINE_KEYS)
    if unknown:
        raise DeadlineConfigError(f"deadline file has unknown keys: {', '.join(unknown)}")
    missing = sorted(_DEADLINE_KEYS - set(data))
    if missing:
        raise DeadlineConfigError(f"deadline file is missing keys: {', '.join(missing)}")

    days = [_toml_int("working_days", d) for d in _toml_list("working_days", data["working_days"])]
    if len(set(days)) != len(days):
        raise DeadlineConfigError(f"working_days lists a weekday twice: {days}")
    hours = _toml_list("working_hours", data["working_hours"])
    if len(hours) != 2:
        raise DeadlineConfigError(f'working_hours must be ["start", "end"], got {hours!r}')
    band = data["simple_claim_value_band"]
    if not isinstance(band, dict):
        raise DeadlineConfigError(
            f"simple_claim_value_band must be a table of currency = amount, got {band!r}"
        )

    return DeadlineConfig(
        version=data["version"],
        timezone=data["timezone"],
        working_days=frozenset(days),
        working_hours=(
            _toml_time("working_hours[0]", hours[0]),
            _toml_time("working_hours[1]", hours[1]),
        ),
        holidays=_toml_dates("holidays", data["holidays"]),
        extra_working_days=_toml_dates("extra_working_days", data["extra_working_days"]),
        first_response=timedelta(
            minutes=_toml_int("first_response_working_minutes", data["first_response_working_minutes"])
        ),
        simple_claim_value_band={
            code: _toml_decimal(f"simple_claim_value_band.{code}", v) for code, v in band.items()
        },
        simple_decision=timedelta(hours=_toml_int("simple_decision_hours", data["simple_decision_hours"])),
        damage_decision_working_days=_toml_int(
            "damage_decision_working_days", data["damage_decision_working_days"]
        ),
    )


# --------------------------------------------------------------------------------------------------
# Working time


def _utc(name: str, value: datetime) -> datetime:
    """`value` in UTC. Any aware datetime is accepted (the instant is unambiguous); naive ones are a
    ValueError, because a naive time would silently be read in the server's zone."""
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _local_date(at: datetime, cfg: DeadlineConfig) -> date:
    return at.astimezone(cfg.zone).date()


def is_working_day(d: date, cfg: DeadlineConfig) -> bool:
    """Whether the local date `d` is worked: a make-up day, or a normal working weekday that is not a
    holiday."""
    if isinstance(d, datetime) or not isinstance(d, date):
        raise ValueError(f"expected a date, got {d!r}")
    if d in cfg.extra_working_days:
        return True
    return d.isoweekday() in cfg.working_days and d not in cfg.holidays


def _working_interval(d: date, cfg: DeadlineConfig) -> tuple[datetime, datetime] | None:
    """The working hours of local date `d` as a [start, end) pair of UTC datetimes, or None if `d` is
    not worked. Built from local wall-clock times, then taken to UTC, so the length is real elapsed
    time even on a day the clocks change."""
    if not is_working_day(d, cfg):
        return None
    zone = cfg.zone
    start = datetime.combine(d, cfg.working_hours[0], tzinfo=zone).astimezone(UTC)
    end = datetime.combine(d, cfg.working_hours[1], tzinfo=zone).astimezone(UTC)
    # Only a daylight-saving jump across the whole working day could make this empty; treat it as shut.
    return (start, end) if start < end else None


def _working_days_from(first: date, cfg: DeadlineConfig) -> Iterable[tuple[date, datetime, datetime]]:
    """Working days from local date `first` on, with their UTC working intervals. Endless for a usable
    calendar; raises ValueError after MAX_DAYS_WITHOUT_WORK days in a row without a working day."""
    d, idle = first, 0
    while True:
        interval = _working_interval(d, cfg)
        if interval is None:
            idle += 1
            if idle > MAX_DAYS_WITHOUT_WORK:
                raise ValueError(
                    f"no working day in the {MAX_DAYS_WITHOUT_WORK} days from {d - timedelta(days=idle - 1)} "
                    f"in deadline config {cfg.version}"
                )
        else:
            idle = 0
            yield d, interval[0], interval[1]
        d += timedelta(days=1)


def is_working_time(at: datetime, cfg: DeadlineConfig) -> bool:
    """Whether `at` (aware) falls in working hours: on a working day, from start up to, not
    including, end (18:00:00 is already after hours)."""
    at = _utc("at", at)
    interval = _working_interval(_local_date(at, cfg), cfg)
    return interval is not None and interval[0] <= at < interval[1]


def add_working_time(start: datetime, duration: timedelta, cfg: DeadlineConfig) -> datetime:
    """`start` plus `duration` of working time, in UTC: only working hours on working days count.

    Review entered Friday 17:30 with 1 hour to go -> Monday 09:30 (30 minutes on Friday, 30 on
    Monday), if Monday is worked. A duration that ends exactly at closing time ends then (Friday
    17:00 + 1 h = Friday 18:00), not at the next day's start. A zero duration is `start` itself
    during working hours and the next start of working hours outside them: the clock of a claim that
    arrives at night starts in the morning. Never before `start`, and never earlier for a longer
    duration. Raises ValueError for a naive `start` or a negative duration.
    """
    current = _utc("start", start)
    if not isinstance(duration, timedelta) or duration < timedelta(0):
        raise ValueError(f"duration must be a timedelta of at least 0, got {duration!r}")
    remaining = duration
    for _, day_start, day_end in _working_days_from(_local_date(current, cfg), cfg):
        if day_end <= current:
            continue  # the rest of the start's day is after hours
        current = max(current, day_start)
        available = day_end - current
        if remaining <= available:
            return current + remaining
        remaining -= available
        current = day_end
    raise AssertionError("unreachable: _working_days_from is endless or raises")  # pragma: no cover


def add_working_days(start: datetime, days: int, cfg: DeadlineConfig) -> datetime:
    """The end of working hours (18:00 local by default) of the `days`-th working day after the local
    date of `start`, in UTC.

    The day of `start` itself does not count, whatever its hour: the usual rule for periods counted
    in days (China's Civil Code, art. 201: the day a period starts is not counted), and the one a
    customer can check on a calendar ("5 working days after the day I submitted"). So Monday 10:00 +
    5 -> next Monday 18:00, and a claim from Saturday -> Friday 18:00. Always after `start` for
    `days` >= 1. For `days` = 0: the end of the start's own day if that is a working day not yet
    over, else the end of the next working day (never before `start`). Raises ValueError for a naive
    `start` or a negative count.
    """
    current = _utc("start", start)
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise ValueError(f"days must be a whole number of at least 0, got {days!r}")
    first = _local_date(current, cfg)
    if days > 0:
        first += timedelta(days=1)
    counted = 0
    for _, _, day_end in _working_days_from(first, cfg):
        if days == 0:
            if day_end >= current:
                return day_end
            continue
        counted += 1
        if counted == days:
            return day_end
    raise AssertionError("unreachable: _working_days_from is endless or raises")  # pragma: no cover


# --------------------------------------------------------------------------------------------------
# A claim's deadlines


@dataclass(frozen=True)
class Deadlines:
    """A claim's deadlines, in UTC.

    `first_response_due`: when a person must first answer, counted in working time from entering
    review; None while the claim has not entered review (a fast-lane offer needs no person).
    `decision_due`: when the claim must be decided, counted from submission.
    """

    first_response_due: datetime | None
    decision_due: datetime


def _check_value(declared_value: Decimal, currency: str) -> tuple[Decimal, str]:
    currency = parse_currency(currency)
    if isinstance(declared_value, bool) or not isinstance(declared_value, Decimal):
        raise MoneyError(f"declared value must be a Decimal, got {type(declared_value).__name__}")
    if not declared_value.is_finite() or declared_value <= 0:
        raise MoneyError(f"declared value must be greater than zero, got {declared_value}")
    return declared_value, currency


def is_simple_claim(declared_value: Decimal, currency: str, cfg: DeadlineConfig) -> bool:
    """Whether a claim is simple (24-hour decision): its declared value is strictly below the band of
    its currency. A currency without a band is never simple: nobody has decided what is small in it,
    and a wrong guess would promise customers a deadline adjusters cannot keep. Raises MoneyError
    (a ValueError) for an unknown currency or a value that is not a positive Decimal."""
    declared_value, currency = _check_value(declared_value, currency)
    band = cfg.simple_claim_value_band.get(currency)
    return band is not None and declared_value < band


def _decision_due(
    submitted: datetime, declared_value: Decimal, currency: str, cfg: DeadlineConfig
) -> datetime:
    due = add_working_days(submitted, cfg.damage_decision_working_days, cfg)
    if is_simple_claim(declared_value, currency, cfg):
        # min(): the working-day promise holds for every claim, simple ones included, should a config
        # ever make the simple deadline the later of the two.
        due = min(due, submitted + cfg.simple_decision)
    return due


def review_deadlines(
    *,
    submitted_at: datetime,
    entered_review_at: datetime | None,
    declared_value: Decimal,
    currency: str,
    cfg: DeadlineConfig,
) -> Deadlines:
    """A claim's deadlines (see :class:`Deadlines`), in UTC.

    - first_response_due = `entered_review_at` + `cfg.first_response` of working time (None when
      `entered_review_at` is None);
    - decision_due = the end of the `cfg.damage_decision_working_days`-th working day after the day of
      `submitted_at`, or, for a simple claim (:func:`is_simple_claim`), `submitted_at` +
      `cfg.simple_decision` wall-clock if that is earlier.

    Datetimes must be timezone-aware (UTC expected; any zone is converted); naive ones, a review
    entered before submission, an unknown currency or a non-positive value raise ValueError.
    """
    submitted = _utc("submitted_at", submitted_at)
    first_response_due = None
    if entered_review_at is not None:
        entered = _utc("entered_review_at", entered_review_at)
        if entered < submitted:
            raise ValueError(
                f"entered_review_at {entered.isoformat()} is before submitted_at {submitted.isoformat()}"
            )
        first_response_due = add_working_time(entered, cfg.first_response, cfg)
    return Deadlines(first_response_due, _decision_due(submitted, declared_value, currency, cfg))


def expected_decision_at(
    *, submitted_at: datetime, declared_value: Decimal, currency: str, cfg: DeadlineConfig
) -> datetime:
    """What the customer view shows as "decision expected by": exactly ``review_deadlines(...)
    .decision_due``, which does not depend on review. It is the latest time we promise, not a
    forecast; a helper of its own so the customer view cannot drift from the deadline adjusters are
    held to (one rule, computed in one place)."""
    return _decision_due(_utc("submitted_at", submitted_at), declared_value, currency, cfg)


# --------------------------------------------------------------------------------------------------
# SLA status


class SlaState(StrEnum):
    """Where a deadline stands. Stored and shown as its string value."""

    ON_TIME = "on_time"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"


@dataclass(frozen=True)
class SlaStatus:
    """A deadline at a moment: its state, the deadline (UTC) and the time left (negative once overdue)."""

    state: SlaState
    due: datetime
    remaining: timedelta


def sla_status(due: datetime, now: datetime, *, soon: timedelta = timedelta(hours=2)) -> SlaStatus:
    """How a deadline stands at `now` (passed in: no clock reads here).

    A deadline is met up to and including its instant ("by 18:00" allows 18:00), so: overdue once
    `now` is past `due`; due soon while at most `soon` is left (the boundary counts as soon, so the
    warning is never late); on time before that. Raises ValueError for naive datetimes or a negative
    `soon`.
    """
    due, now = _utc("due", due), _utc("now", now)
    if not isinstance(soon, timedelta) or soon < timedelta(0):
        raise ValueError(f"soon must be a timedelta of at least 0, got {soon!r}")
    remaining = due - now
    if remaining < timedelta(0):
        state = SlaState.OVERDUE
    elif remaining <= soon:
        state = SlaState.DUE_SOON
    else:
        state = SlaState.ON_TIME
    return SlaStatus(state, due, remaining)
