"""Service deadlines: working calendar, working-time arithmetic, claim deadlines, SLA status, parsing."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claims.deadlines import (
    DEFAULT_DEADLINES_FILE,
    DeadlineConfig,
    DeadlineConfigError,
    Deadlines,
    SlaState,
    add_working_days,
    add_working_time,
    expected_decision_at,
    is_simple_claim,
    is_working_day,
    is_working_time,
    parse_deadlines,
    review_deadlines,
    sla_status,
)
from claims.money import MoneyError

SHANGHAI = ZoneInfo("Asia/Shanghai")
SHIPPED_TEXT = DEFAULT_DEADLINES_FILE.read_text(encoding="utf-8")
SHIPPED = parse_deadlines(SHIPPED_TEXT)
PLAIN = DeadlineConfig(version="test-plain")  # Mon-Fri 09:00-18:00, no holidays
D = Decimal


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """A Shanghai wall-clock time as the UTC datetime the functions take."""
    return datetime(y, mo, d, h, mi, tzinfo=SHANGHAI).astimezone(UTC)


# --------------------------------------------------------------------------------------------------
# Calendar


def test_working_days_follow_weekdays_holidays_and_make_up_days() -> None:
    assert is_working_day(date(2026, 11, 13), SHIPPED)  # Friday
    assert not is_working_day(date(2026, 11, 14), SHIPPED)  # Saturday
    assert not is_working_day(date(2026, 10, 1), SHIPPED)  # National Day, a Thursday
    assert is_working_day(date(2026, 10, 10), SHIPPED)  # make-up Saturday
    assert is_working_day(date(2026, 9, 20), SHIPPED)  # make-up Sunday
    assert is_working_day(date(2026, 10, 1), dataclasses.replace(SHIPPED, holidays=frozenset()))
    with pytest.raises(ValueError):
        is_working_day(datetime(2026, 11, 13, tzinfo=UTC), SHIPPED)  # type: ignore[arg-type]


def test_working_time_is_half_open_in_local_time() -> None:
    assert not is_working_time(local(2026, 11, 13, 8, 59), SHIPPED)
    assert is_working_time(local(2026, 11, 13, 9, 0), SHIPPED)
    assert is_working_time(local(2026, 11, 13, 17, 59), SHIPPED)
    assert not is_working_time(local(2026, 11, 13, 18, 0), SHIPPED)
    assert not is_working_time(local(2026, 11, 14, 10, 0), SHIPPED)  # Saturday
    # 01:30 UTC is 09:30 in Shanghai: the zone decides, not UTC's clock.
    assert is_working_time(datetime(2026, 11, 13, 1, 30, tzinfo=UTC), SHIPPED)
    # Any aware datetime is the same instant.
    assert is_working_time(datetime(2026, 11, 13, 9, 30, tzinfo=SHANGHAI), SHIPPED)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_working_time(datetime(2026, 11, 13, 10, 0), SHIPPED)


# --------------------------------------------------------------------------------------------------
# add_working_time


def test_friday_evening_rolls_over_to_monday() -> None:
    hour = timedelta(hours=1)
    assert add_working_time(local(2026, 11, 13, 17, 30), hour, SHIPPED) == local(2026, 11, 16, 9, 30)
    assert add_working_time(local(2026, 11, 13, 20, 0), hour, SHIPPED) == local(2026, 11, 16, 10, 0)
    assert add_working_time(local(2026, 11, 14, 12, 0), hour, SHIPPED) == local(2026, 11, 16, 10, 0)
    # Ending exactly at closing time ends then, not at the next day's start.
    assert add_working_time(local(2026, 11, 13, 17, 0), hour, SHIPPED) == local(2026, 11, 13, 18, 0)


def test_holidays_and_make_up_days_roll_over() -> None:
    hour = timedelta(hours=1)
    # Wednesday before National Day (1-7 October) -> Thursday 8 October.
    assert add_working_time(local(2026, 9, 30, 17, 30), hour, SHIPPED) == local(2026, 10, 8, 9, 30)
    # Friday 9 October -> Saturday 10 October, a make-up working day.
    assert add_working_time(local(2026, 10, 9, 17, 30), hour, SHIPPED) == local(2026, 10, 10, 9, 30)
    # Saturday 19 September -> Sunday 20 September, a make-up working day.
    assert add_working_time(local(2026, 9, 19, 10, 0), hour, SHIPPED) == local(2026, 9, 20, 10, 0)
    # The same without the make-up day: Monday.
    assert add_working_time(local(2026, 10, 9, 17, 30), hour, PLAIN) == local(2026, 10, 12, 9, 30)
    # Spring Festival: Friday 13 February 17:00 + 11 h = 1 h on Friday, 9 h on make-up Saturday 14,
    # 15-23 February off, 1 h on Tuesday 24 February.
    spring = local(2026, 2, 13, 17, 0)
    assert add_working_time(spring, timedelta(hours=10), SHIPPED) == local(2026, 2, 14, 18, 0)
    assert add_working_time(spring, timedelta(hours=11), SHIPPED) == local(2026, 2, 24, 10, 0)


def test_zero_duration_is_start_in_hours_and_next_start_of_hours_outside() -> None:
    zero = timedelta(0)
    assert add_working_time(local(2026, 11, 13, 10, 15), zero, SHIPPED) == local(2026, 11, 13, 10, 15)
    assert add_working_time(local(2026, 11, 13, 9, 0), zero, SHIPPED) == local(2026, 11, 13, 9, 0)
    assert add_working_time(local(2026, 11, 13, 18, 0), zero, SHIPPED) == local(2026, 11, 16, 9, 0)
    assert add_working_time(local(2026, 11, 13, 7, 0), zero, SHIPPED) == local(2026, 11, 13, 9, 0)


def test_add_working_time_refuses_naive_and_negative() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        add_working_time(datetime(2026, 11, 13, 10, 0), timedelta(hours=1), SHIPPED)
    with pytest.raises(ValueError, match="duration"):
        add_working_time(local(2026, 11, 13, 10, 0), timedelta(seconds=-1), SHIPPED)


def test_working_time_is_measured_in_real_time_across_a_dst_change() -> None:
    # Berlin skips 02:00-03:00 on 29 March 2026: a 01:00-04:00 working day has 2 real hours.
    cfg = DeadlineConfig(
        version="dst",
        timezone="Europe/Berlin",
        working_days=frozenset(range(1, 8)),
        working_hours=(time(1, 0), time(4, 0)),
        simple_claim_value_band={"EUR": D(100)},
    )
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 3, 29, 1, 0, tzinfo=berlin).astimezone(UTC)
    end_of_day = datetime(2026, 3, 29, 4, 0, tzinfo=berlin).astimezone(UTC)
    assert end_of_day - start == timedelta(hours=2)
    assert add_working_time(start, timedelta(hours=2), cfg) == end_of_day
    next_day = datetime(2026, 3, 30, 1, 30, tzinfo=berlin).astimezone(UTC)
    assert add_working_time(start, timedelta(hours=2, minutes=30), cfg) == next_day


instants = st.datetimes(
    min_value=datetime(2025, 12, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=120))


@st.composite
def configs(draw: st.DrawFn) -> DeadlineConfig:
    """Random calendars: any non-empty weekday set, any hours, some holidays and make-up days."""
    days = draw(st.frozensets(st.integers(1, 7), min_size=1))
    start = draw(st.integers(0, 22 * 60))
    end = draw(st.integers(start + 1, 23 * 60 + 59))
    dates = st.dates(min_value=date(2025, 12, 1), max_value=date(2028, 1, 31))
    holidays = draw(st.frozensets(dates, max_size=30))
    extra = draw(st.frozensets(dates, max_size=10))
    extra = frozenset(d for d in extra if d not in holidays and d.isoweekday() not in days)
    return DeadlineConfig(
        version="random",
        timezone=draw(st.sampled_from(["Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC"])),
        working_days=days,
        working_hours=(time(*divmod(start, 60)), time(*divmod(end, 60))),
        holidays=holidays,
        extra_working_days=extra,
    )


def _ends_a_working_interval(at: datetime, cfg: DeadlineConfig) -> bool:
    d = at.astimezone(cfg.zone).date()
    close = datetime.combine(d, cfg.working_hours[1], tzinfo=cfg.zone).astimezone(UTC)
    return is_working_day(d, cfg) and at == close


@settings(deadline=None)
@given(cfg=configs(), start=instants, a=durations, b=durations)
def test_add_working_time_properties(
    cfg: DeadlineConfig, start: datetime, a: timedelta, b: timedelta
) -> None:
    small, large = sorted((a, b))
    r_small, r_large = add_working_time(start, small, cfg), add_working_time(start, large, cfg)
    assert r_small.tzinfo is UTC
    assert start <= r_small <= r_large  # never before start; monotone in the duration
    assert r_large - r_small >= large - small  # working time never runs faster than the clock
    for r in (r_small, r_large):
        assert is_working_time(r, cfg) or _ends_a_working_interval(r, cfg)
    if b > timedelta(0):  # working time adds up
        assert add_working_time(add_working_time(start, a, cfg), b, cfg) == add_working_time(
            start, a + b, cfg
        )


@given(start=instants)
def test_zero_duration_property(start: datetime) -> None:
    r = add_working_time(start, timedelta(0), SHIPPED)
    if is_working_time(start, SHIPPED):
        assert r == start
    else:
        assert r > start and is_working_time(r, SHIPPED)
        assert r.astimezone(SHANGHAI).time() == time(9, 0)


# --------------------------------------------------------------------------------------------------
# add_working_days


def test_add_working_days_ends_at_closing_time_of_the_nth_working_day_after() -> None:
    # Monday 10:00 + 5: the day of submission does not count -> next Monday 18:00.
    assert add_working_days(local(2026, 11, 16, 10, 0), 5, SHIPPED) == local(2026, 11, 23, 18, 0)
    # Before hours or after hours: the same day, not counted either way.
    assert add_working_days(local(2026, 11, 16, 7, 0), 5, SHIPPED) == local(2026, 11, 23, 18, 0)
    assert add_working_days(local(2026, 11, 16, 22, 0), 5, SHIPPED) == local(2026, 11, 23, 18, 0)
    # Saturday -> Friday.
    assert add_working_days(local(2026, 11, 14, 12, 0), 5, SHIPPED) == local(2026, 11, 20, 18, 0)
    # Tuesday 29 September: Wed 30 (1), 1-7 October off, Thu 8 (2), Fri 9 (3), make-up Sat 10 (4),
    # Mon 12 (5).
    assert add_working_days(local(2026, 9, 29, 11, 0), 5, SHIPPED) == local(2026, 10, 12, 18, 0)
    # 23:30 UTC on Sunday is 07:30 on Monday in Shanghai: the local date decides.
    assert add_working_days(datetime(2026, 11, 15, 23, 30, tzinfo=UTC), 1, SHIPPED) == local(
        2026, 11, 17, 18, 0
    )


def test_add_working_days_zero_is_the_end_of_the_current_or_next_working_day() -> None:
    assert add_working_days(local(2026, 11, 13, 10, 0), 0, SHIPPED) == local(2026, 11, 13, 18, 0)
    assert add_working_days(local(2026, 11, 13, 18, 0), 0, SHIPPED) == local(2026, 11, 13, 18, 0)
    assert add_working_days(local(2026, 11, 13, 19, 0), 0, SHIPPED) == local(2026, 11, 16, 18, 0)
    with pytest.raises(ValueError):
        add_working_days(local(2026, 11, 13, 10, 0), -1, SHIPPED)
    with pytest.raises(ValueError, match="timezone-aware"):
        add_working_days(datetime(2026, 11, 13, 10, 0), 5, SHIPPED)


@settings(deadline=None)
@given(cfg=configs(), start=instants, days=st.integers(0, 12), more=st.integers(0, 5))
def test_add_working_days_properties(cfg: DeadlineConfig, start: datetime, days: int, more: int) -> None:
    r = add_working_days(start, days, cfg)
    assert r >= start and r.tzinfo is UTC
    assert _ends_a_working_interval(r, cfg)
    assert add_working_days(start, days + more, cfg) >= r
    if days:
        first, last = start.astimezone(cfg.zone).date(), r.astimezone(cfg.zone).date()
        counted = sum(is_working_day(first + timedelta(n), cfg) for n in range(1, (last - first).days + 1))
        assert counted == days


def test_a_calendar_without_working_days_is_an_error_not_a_hang() -> None:
    cfg = DeadlineConfig(
        version="broken",
        working_days=frozenset({1}),
        holidays=frozenset(date(2026, 1, 5) + timedelta(weeks=w) for w in range(60)),
    )
    with pytest.raises(ValueError, match="no working day"):
        add_working_time(local(2026, 1, 1), timedelta(hours=1), cfg)


# --------------------------------------------------------------------------------------------------
# Claim deadlines


def test_simple_claim_is_decided_within_24_hours() -> None:
    submitted = local(2026, 11, 16, 10, 0)
    deadlines = review_deadlines(
        submitted_at=submitted,
        entered_review_at=submitted,
        declared_value=D("300"),
        currency="CNY",
        cfg=SHIPPED,
    )
    assert deadlines == Deadlines(local(2026, 11, 16, 11, 0), submitted + timedelta(hours=24))
    # 24 hours are wall-clock: over a weekend too.
    friday_night = local(2026, 11, 13, 20, 0)
    assert expected_decision_at(
        submitted_at=friday_night, declared_value=D("300"), currency="CNY", cfg=SHIPPED
    ) == local(2026, 11, 14, 20, 0)


def test_other_claims_are_decided_by_the_end_of_the_5th_working_day() -> None:
    submitted = local(2026, 11, 16, 10, 0)
    entered = local(2026, 11, 16, 17, 30)
    deadlines = review_deadlines(
        submitted_at=submitted,
        entered_review_at=entered,
        declared_value=D("3000"),
        currency="CNY",
        cfg=SHIPPED,
    )
    assert deadlines.first_response_due == local(2026, 11, 17, 9, 30)
    assert deadlines.decision_due == local(2026, 11, 23, 18, 0)
    assert deadlines.decision_due.tzinfo is UTC


def test_value_band_is_strict_and_per_currency() -> None:
    assert is_simple_claim(D("499.99"), "CNY", SHIPPED)
    assert not is_simple_claim(D("500"), "CNY", SHIPPED)
    assert is_simple_claim(D("300"), "cny", SHIPPED)
    # USD has no band: never simple, so a 300 USD claim gets the working-day deadline.
    assert not is_simple_claim(D("300"), "USD", SHIPPED)
    submitted = local(2026, 11, 16, 10, 0)
    due = expected_decision_at(submitted_at=submitted, declared_value=D("300"), currency="USD", cfg=SHIPPED)
    assert due == local(2026, 11, 23, 18, 0)
    with pytest.raises(MoneyError):
        is_simple_claim(D("300"), "XYZ", SHIPPED)
    with pytest.raises(MoneyError):
        is_simple_claim(D("0"), "CNY", SHIPPED)
    with pytest.raises(MoneyError):
        is_simple_claim(300, "CNY", SHIPPED)  # type: ignore[arg-type]


def test_decision_due_is_the_earlier_of_the_two_rules() -> None:
    # A (strange) config whose simple deadline is later than the working-day one: the earlier wins.
    cfg = dataclasses.replace(PLAIN, simple_decision=timedelta(days=20), damage_decision_working_days=1)
    submitted = local(2026, 11, 16, 10, 0)
    due = expected_decision_at(submitted_at=submitted, declared_value=D("1"), currency="CNY", cfg=cfg)
    assert due == local(2026, 11, 17, 18, 0)


def test_review_deadlines_without_review_and_bad_input() -> None:
    submitted = local(2026, 11, 16, 10, 0)
    d = review_deadlines(
        submitted_at=submitted, entered_review_at=None, declared_value=D("300"), currency="CNY", cfg=SHIPPED
    )
    assert d.first_response_due is None
    assert d.decision_due == expected_decision_at(
        submitted_at=submitted, declared_value=D("300"), currency="CNY", cfg=SHIPPED
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        review_deadlines(
            submitted_at=datetime(2026, 11, 16, 10, 0),
            entered_review_at=None,
            declared_value=D("300"),
            currency="CNY",
            cfg=SHIPPED,
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        review_deadlines(
            submitted_at=submitted,
            entered_review_at=datetime(2026, 11, 16, 10, 0),
            declared_value=D("300"),
            currency="CNY",
            cfg=SHIPPED,
        )
    with pytest.raises(ValueError, match="before"):
        review_deadlines(
            submitted_at=submitted,
            entered_review_at=submitted - timedelta(seconds=1),
            declared_value=D("300"),
            currency="CNY",
            cfg=SHIPPED,
        )


def test_any_aware_zone_in_utc_out() -> None:
    submitted = datetime(2026, 11, 16, 10, 0, tzinfo=timezone(timedelta(hours=8)))
    d = review_deadlines(
        submitted_at=submitted,
        entered_review_at=submitted,
        declared_value=D("3000"),
        currency="CNY",
        cfg=SHIPPED,
    )
    assert d == Deadlines(datetime(2026, 11, 16, 3, 0, tzinfo=UTC), datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
    assert d.first_response_due is not None and d.first_response_due.tzinfo is UTC


# --------------------------------------------------------------------------------------------------
# SLA status


def test_sla_status_boundaries() -> None:
    due = local(2026, 11, 16, 18, 0)
    soon = timedelta(hours=2)
    tick = timedelta(microseconds=1)
    assert sla_status(due, due - soon - tick).state == SlaState.ON_TIME
    assert sla_status(due, due - soon).state == SlaState.DUE_SOON
    assert sla_status(due, due).state == SlaState.DUE_SOON  # "by 18:00" allows 18:00
    late = sla_status(due, due + tick)
    assert late.state == "overdue" and late.remaining == -tick and late.due == due
    assert sla_status(due, due - timedelta(hours=1), soon=timedelta(minutes=30)).state == SlaState.ON_TIME
    assert sla_status(due, due, soon=timedelta(0)).state == SlaState.DUE_SOON
    status = sla_status(due, due - timedelta(hours=5))
    assert status.remaining == timedelta(hours=5) and status.state == "on_time"
    with pytest.raises(ValueError, match="timezone-aware"):
        sla_status(due, datetime(2026, 11, 16, 10, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        sla_status(datetime(2026, 11, 16, 10, 0), due)
    with pytest.raises(ValueError, match="soon"):
        sla_status(due, due, soon=timedelta(seconds=-1))


@given(due=instants, now=instants)
def test_sla_state_matches_remaining(due: datetime, now: datetime) -> None:
    status = sla_status(due, now)
    assert status.remaining == due - now
    expected = "overdue" if now > due else "due_soon" if due - now <= timedelta(hours=2) else "on_time"
    assert status.state == expected


# --------------------------------------------------------------------------------------------------
# Configuration and parsing


def test_shipped_file_parses_to_the_defaults_plus_the_calendar() -> None:
    assert DEFAULT_DEADLINES_FILE.name == "deadlines-2026-11-v1.toml"
    assert SHIPPED.version == DEFAULT_DEADLINES_FILE.stem
    calendar = {"holidays": SHIPPED.holidays, "extra_working_days": SHIPPED.extra_working_days}
    assert dataclasses.replace(DeadlineConfig(version=SHIPPED.version), **calendar) == SHIPPED
    assert {date(2026, 1, 1), date(2026, 2, 17), date(2026, 10, 1), date(2027, 10, 1)} <= SHIPPED.holidays
    assert all(d.isoweekday() in (6, 7) for d in SHIPPED.extra_working_days)
    assert hash(SHIPPED) == hash(parse_deadlines(SHIPPED_TEXT))


BASE = """
version = "t"
timezone = "Asia/Shanghai"
working_days = [1, 2, 3, 4, 5]
working_hours = ["09:00", "18:00"]
first_response_working_minutes = 60
simple_decision_hours = 24
damage_decision_working_days = 5
holidays = [2026-10-01, "2026-10-02"]
extra_working_days = [2026-10-10]
[simple_claim_value_band]
CNY = "500"
"""


def with_line(key: str, line: str) -> str:
    """BASE with the line of `key` replaced by `line`."""
    lines = [line if row.startswith(f"{key} =") else row for row in BASE.splitlines()]
    assert line in lines
    return "\n".join(lines)


def test_parse_base_text() -> None:
    cfg = parse_deadlines(BASE)
    assert cfg.holidays == {date(2026, 10, 1), date(2026, 10, 2)}  # TOML date and ISO text alike
    assert cfg.working_hours == (time(9), time(18))
    assert cfg.first_response == timedelta(hours=1)
    assert cfg.simple_claim_value_band == {"CNY": D("500")}
    assert parse_deadlines(
        with_line("working_hours", "working_hours = [09:00:00, 17:30:00]")
    ).working_hours == (
        time(9),
        time(17, 30),
    )
    assert parse_deadlines(with_line("CNY", "CNY = 500")).simple_claim_value_band == {"CNY": D("500")}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("extra_knob = 1\n" + BASE, "unknown keys: extra_knob"),
        (BASE.replace("CNY", "[x]\nCNY"), "unknown keys"),
        (with_line("timezone", "timezones = 'UTC'"), "unknown keys: timezones"),
        (BASE.replace("simple_decision_hours = 24\n", ""), "missing keys: simple_decision_hours"),
        (with_line("CNY", "CNY = 500.0"), "TOML float"),
        (with_line("CNY", 'CNY = "500.001"'), "decimal places"),
        (with_line("CNY", 'CNY = "-5"'), "amount"),
        (with_line("CNY", 'XXX = "5"'), "ISO 4217"),
        (with_line("simple_decision_hours", "simple_decision_hours = 24.0"), "whole number"),
        (with_line("simple_decision_hours", "simple_decision_hours = 0"), "simple_decision"),
        (
            with_line("first_response_working_minutes", "first_response_working_minutes = true"),
            "whole number",
        ),
        (with_line("damage_decision_working_days", "damage_decision_working_days = 0"), "1-60"),
        (with_line("working_hours", 'working_hours = ["9:00", "18:00"]'), "HH:MM"),
        (with_line("working_hours", 'working_hours = ["18:00", "09:00"]'), "start before"),
        (with_line("working_hours", 'working_hours = ["09:00"]'), "working_hours"),
        (with_line("working_days", "working_days = [0, 1, 2, 3, 4]"), "ISO weekday"),
        (with_line("working_days", "working_days = [1, 1, 2]"), "twice"),
        (with_line("working_days", "working_days = []"), "at least one"),
        (with_line("holidays", "holidays = [2026-10-01, 2026-10-01]"), "twice"),
        (with_line("holidays", 'holidays = ["2026-10-32"]'), "not a date"),
        (with_line("holidays", 'holidays = ["20261001"]'), "not a date"),
        (with_line("holidays", "holidays = [2026-10-01T00:00:00]"), "date and time"),
        (with_line("holidays", "holidays = [2026-10-10]"), "both a holiday and an extra working day"),
        (with_line("extra_working_days", "extra_working_days = [2026-10-09]"), "already a working day"),
        (with_line("timezone", 'timezone = "Asia/Nowhere"'), "IANA"),
        (with_line("timezone", 'timezone = "Asia"'), "IANA"),
        (with_line("version", 'version = ""'), "version"),
        ("version = ", "not valid TOML"),
    ],
)
def test_parse_rejects(text: str, match: str) -> None:
    with pytest.raises(DeadlineConfigError, match=match):
        parse_deadlines(text)


def test_config_validation() -> None:
    with pytest.raises(DeadlineConfigError, match="Decimal"):
        DeadlineConfig(version="v", simple_claim_value_band={"CNY": 500.0})  # type: ignore[dict-item]
    with pytest.raises(DeadlineConfigError, match="not a date"):
        DeadlineConfig(version="v", holidays=frozenset({datetime(2026, 10, 1)}))
    with pytest.raises(DeadlineConfigError, match="without a zone"):
        DeadlineConfig(version="v", working_hours=(time(9, tzinfo=UTC), time(18, tzinfo=UTC)))
    with pytest.raises(DeadlineConfigError, match="first_response"):
        DeadlineConfig(version="v", first_response=timedelta(days=8))
    cfg = DeadlineConfig(version="v", simple_claim_value_band={"CNY": 500, "USD": D("50.00")})
    assert cfg.simple_claim_value_band == {"CNY": D(500), "USD": D(50)}
    with pytest.raises(TypeError):
        cfg.simple_claim_value_band["EUR"] = D(1)  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.version = "w"  # type: ignore[misc]
