"""Schedule timing (jupyter_orchestrate.scheduling.timing): validation, cron and every rules, DST, catch-up.

Pure functions on fake instants: nothing sleeps and nothing reads the clock. Expected instants are written
out in UTC; the local times they stand for are in the comments.
"""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from jupyter_orchestrate.models import CatchupPolicy, Schedule
from jupyter_orchestrate.scheduling.timing import (
    ANCHOR_DATE,
    EveryRule,
    catchup_fires,
    fires_between,
    next_fire,
    parse_every,
    schedule_problems,
)

UTC = dt.timezone.utc
AMS = "Europe/Amsterdam"  # 2024-03-31 02:00 CET -> 03:00 CEST; 2024-10-27 03:00 CEST -> 02:00 CET
NY = "America/New_York"  # 2024-03-10 02:00 EST -> 03:00 EDT; 2024-11-03 02:00 EDT -> 01:00 EST
HOUR = dt.timedelta(hours=1)


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


def cron(expr: str, timezone: str = "UTC", **kwargs) -> Schedule:
    return Schedule(cron=expr, timezone=timezone, **kwargs)


def every(rule: str, timezone: str = "UTC", **kwargs) -> Schedule:
    return Schedule(every=rule, timezone=timezone, **kwargs)


def fields(problems: list[tuple[str, str]]) -> list[str]:
    return [field for field, _ in problems]


# ------------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "schedule",
    [
        cron("*/15 * * * *"),
        cron("* * * * * *"),
        cron("0 30 9 * * mon-fri", timezone=NY),
        cron("0 0 29 2 *"),
        every("15 minutes", timezone=AMS),
        every("every day at 06:30"),
        every("Monday at 09:00"),
        every("hour at :30"),
        every("minute at :15"),
    ],
    ids=lambda s: s.cron or s.every,
)
def test_valid_schedules_have_no_problems(schedule: Schedule) -> None:
    assert schedule_problems(schedule) == []


def test_invalid_cron_is_reported_with_croniter_reason() -> None:
    problems = schedule_problems(cron("61 * * * *"))
    assert fields(problems) == ["cron"]
    assert "invalid cron expression '61 * * * *'" in problems[0][1]
    assert "out of range" in problems[0][1]


@pytest.mark.parametrize("expr, count", [("* * * * * * *", 7), ("* * * *", 4), ("@daily", 1)])
def test_cron_needs_five_or_six_fields(expr: str, count: int) -> None:
    problems = schedule_problems(cron(expr))
    assert fields(problems) == ["cron"]
    assert f"has {count} field(s)" in problems[0][1]
    assert "expected 5" in problems[0][1] and "or 6 (second minute" in problems[0][1]


def test_cron_that_never_matches_is_a_problem() -> None:
    assert schedule_problems(cron("0 0 30 2 *")) == [
        ("cron", "cron expression '0 0 30 2 *' never matches a date")
    ]


def test_unknown_timezone_is_named() -> None:
    problems = schedule_problems(cron("0 * * * *", timezone="Mars/Olympus"))
    assert fields(problems) == ["timezone"]
    assert "'Mars/Olympus'" in problems[0][1]


@pytest.mark.parametrize("name", ["", "Europe", "/etc/passwd", "../UTC", "utc"])
def test_malformed_timezones_are_problems_not_crashes(name: str) -> None:
    assert fields(schedule_problems(cron("0 * * * *", timezone=name))) == ["timezone"]


def test_both_cron_and_every_is_a_problem() -> None:
    problems = schedule_problems(Schedule(cron="0 * * * *", every="15 minutes"))
    assert problems == [("cron", "set exactly one of 'cron' or 'every', not both")]


@pytest.mark.parametrize("schedule", [Schedule(), Schedule(cron="  ", every="")], ids=["none", "blank"])
def test_neither_cron_nor_every_is_a_problem(schedule: Schedule) -> None:
    problems = schedule_problems(schedule)
    assert fields(problems) == ["cron"]
    assert "set exactly one of 'cron'" in problems[0][1]


@pytest.mark.parametrize(
    "rule, reason",
    [
        ("fortnight", "unknown unit 'fortnight'"),
        ("2 second", "Use seconds instead of second"),
        ("2 mondays at 09:00", "only allowed for weekly jobs"),
        ("0 minutes", "whole number >= 1"),
        ("-5 minutes", "expected '[every] [N] <unit> [at <time>]'"),
        ("15 minutes and a bit", "expected '[every] [N] <unit> [at <time>]'"),
        ("day at 25:00", "(25:00 is not between 0 and 23)"),
        ("day at 6:30", "valid format is HH:MM(:SS)?"),
        ("day at", "'at' must be followed by exactly one time"),
        ("week at 10:00", "Invalid unit"),
        ("seconds at :30", "Invalid unit"),
        ("minute at 10:30", "valid format is :SS"),
    ],
)
def test_bad_every_rules_are_reported(rule: str, reason: str) -> None:
    problems = schedule_problems(Schedule(every=rule))
    assert fields(problems) == ["every"]
    assert reason in problems[0][1]
    assert repr(rule) in problems[0][1]


@pytest.mark.parametrize("rule", ["", "   ", "every"])
def test_empty_every_rule_is_refused(rule: str) -> None:
    with pytest.raises(ValueError, match="every rule"):
        parse_every(rule)


def test_all_problems_are_reported_together() -> None:
    problems = schedule_problems(Schedule(cron="bad", every="fortnight", timezone="Mars/Olympus"))
    assert fields(problems) == ["cron", "cron", "every", "timezone"]


def test_invalid_schedule_and_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="timezone: unknown timezone 'Mars/Olympus'"):
        next_fire(cron("0 * * * *", timezone="Mars/Olympus"), utc(2024, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        next_fire(cron("0 * * * *"), dt.datetime(2024, 1, 1))
    with pytest.raises(TypeError):
        next_fire(cron("0 * * * *"), "2024-01-01T00:00:00+00:00")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit must be >= 1"):
        fires_between(cron("0 * * * *"), utc(2024, 1, 1), utc(2024, 1, 2), limit=0)


# ---------------------------------------------------------------------------------------------------- cron


def test_five_field_cron_next_fire_is_strictly_after() -> None:
    schedule = cron("*/15 * * * *")
    assert next_fire(schedule, utc(2024, 5, 1, 10, 7, 30)) == utc(2024, 5, 1, 10, 15)
    assert next_fire(schedule, utc(2024, 5, 1, 10, 15)) == utc(2024, 5, 1, 10, 30)
    assert next_fire(schedule, utc(2024, 12, 31, 23, 59)) == utc(2025, 1, 1, 0, 0)


def test_six_field_cron_has_seconds_first() -> None:
    every_second = cron("* * * * * *")
    assert next_fire(every_second, utc(2024, 5, 1, 10, 0, 0)) == utc(2024, 5, 1, 10, 0, 1)
    assert next_fire(every_second, dt.datetime(2024, 5, 1, 10, 0, 0, 500_000, tzinfo=UTC)) == utc(
        2024, 5, 1, 10, 0, 1
    )
    assert len(fires_between(every_second, utc(2024, 5, 1, 10), utc(2024, 5, 1, 10, 1), limit=100)) == 60
    # second 30 of minute 0 of every hour (seconds-last would read it as minute 30, hour 0)
    assert next_fire(cron("30 0 * * * *"), utc(2024, 5, 1, 10, 5)) == utc(2024, 5, 1, 11, 0, 30)


def test_cron_runs_in_the_schedule_timezone_and_returns_utc() -> None:
    weekdays_nine = cron("0 9 * * mon-fri", timezone=NY)
    friday_afternoon = utc(2024, 6, 7, 14)
    assert next_fire(weekdays_nine, friday_afternoon) == utc(2024, 6, 10, 13)  # Monday 09:00 EDT
    assert next_fire(weekdays_nine, utc(2024, 1, 5, 15)) == utc(2024, 1, 8, 14)  # Monday 09:00 EST
    # an aware input in another offset is the same instant
    tokyo = ZoneInfo("Asia/Tokyo")
    result = next_fire(weekdays_nine, friday_afternoon.astimezone(tokyo))
    assert result == utc(2024, 6, 10, 13) and result.tzinfo is UTC


def test_fires_between_is_half_open_and_limited() -> None:
    hourly = cron("0 * * * *")
    fires = fires_between(hourly, utc(2024, 5, 1, 0), utc(2024, 5, 1, 3), limit=10)
    assert fires == [utc(2024, 5, 1, 1), utc(2024, 5, 1, 2), utc(2024, 5, 1, 3)]
    assert fires_between(hourly, utc(2024, 5, 1, 0), utc(2024, 5, 1, 3), limit=2) == fires[:2]
    assert fires_between(hourly, utc(2024, 5, 1, 3), utc(2024, 5, 1, 0), limit=10) == []


# ----------------------------------------------------------------------------------------------- every rules


def test_parse_every_reads_back_the_schedule_job() -> None:
    assert parse_every("15 minutes") == EveryRule(15, "minutes")
    assert parse_every("every second") == EveryRule(1, "seconds")
    assert parse_every("Every Day At 06:30:15") == EveryRule(1, "days", dt.time(6, 30, 15))
    assert parse_every("monday at 09:00") == EveryRule(1, "weeks", dt.time(9, 0), "monday")
    assert parse_every("fridays at 17:00") == EveryRule(1, "weeks", dt.time(17, 0), "friday")
    assert parse_every("hour at :30") == EveryRule(1, "hours", dt.time(0, 30))
    assert parse_every("hour at 15:20") == EveryRule(1, "hours", dt.time(0, 15, 20))  # MM:SS
    assert parse_every("minute at :15") == EveryRule(1, "minutes", dt.time(0, 0, 15))


def test_interval_rules_are_anchored_to_the_anchor_midnight() -> None:
    anchor = dt.datetime.combine(ANCHOR_DATE, dt.time(0), tzinfo=UTC)
    fires = fires_between(every("7 minutes"), utc(2024, 5, 1, 10, 3), utc(2024, 5, 1, 12), limit=100)
    assert all((fire - anchor) % dt.timedelta(minutes=7) == dt.timedelta(0) for fire in fires)
    assert all(b - a == dt.timedelta(minutes=7) for a, b in itertools.pairwise(fires))
    assert fires[0] - utc(2024, 5, 1, 10, 3) <= dt.timedelta(minutes=7)
    # the same lattice whatever the starting point: deterministic across restarts
    assert next_fire(every("7 minutes"), fires[3] - dt.timedelta(seconds=1)) == fires[3]
    assert next_fire(every("15 minutes"), utc(2024, 5, 1, 10, 7)) == utc(2024, 5, 1, 10, 15)
    assert next_fire(every("every 15 minutes"), utc(2024, 5, 1, 10, 15)) == utc(2024, 5, 1, 10, 30)
    assert next_fire(every("30 seconds"), utc(2024, 5, 1, 10, 0, 1)) == utc(2024, 5, 1, 10, 0, 30)


def test_interval_anchor_is_local_midnight() -> None:
    # Kathmandu is UTC+05:45: local quarter hours are at :00/:15/:30/:45 UTC, local hours at :15 UTC
    assert next_fire(every("hour", timezone="Asia/Kathmandu"), utc(2024, 5, 1, 10, 0)) == utc(
        2024, 5, 1, 10, 15
    )
    assert next_fire(every("2 hours", timezone="Asia/Kathmandu"), utc(2024, 5, 1, 10, 20)) == utc(
        2024, 5, 1, 12, 15
    )
    assert next_fire(every("hour at :30", timezone=AMS), utc(2024, 5, 1, 10, 0)) == utc(2024, 5, 1, 10, 30)
    assert next_fire(every("hour at 15:20"), utc(2024, 5, 1, 10, 0)) == utc(2024, 5, 1, 10, 15, 20)
    assert next_fire(every("minute at :15"), utc(2024, 5, 1, 10, 0, 20)) == utc(2024, 5, 1, 10, 1, 15)


def test_interval_rules_measure_real_time_across_dst() -> None:
    fires = fires_between(every("6 hours", timezone=AMS), utc(2024, 3, 30), utc(2024, 4, 1), limit=20)
    assert all(b - a == 6 * HOUR for a, b in itertools.pairwise(fires))
    assert fires[0] == utc(2024, 3, 30, 5)  # 06:00 CET: the anchor midnight 2000-01-03 was CET
    hourly = fires_between(
        every("hour at :30", timezone=AMS), utc(2024, 10, 26, 22), utc(2024, 10, 27, 22), limit=50
    )
    assert len(hourly) == 24 and all(b - a == HOUR for a, b in itertools.pairwise(hourly))


def test_day_rules_are_local_wall_clock() -> None:
    daily = every("day at 06:30", timezone=AMS)
    assert next_fire(daily, utc(2024, 1, 10, 12)) == utc(2024, 1, 11, 5, 30)  # CET
    assert next_fire(daily, utc(2024, 7, 10, 12)) == utc(2024, 7, 11, 4, 30)  # CEST
    assert next_fire(every("day at 06:30:15"), utc(2024, 7, 10, 6, 30, 15)) == utc(2024, 7, 11, 6, 30, 15)
    assert next_fire(every("day"), utc(2024, 7, 10, 12)) == utc(2024, 7, 11)


def test_n_days_and_n_weeks_align_to_the_anchor_date() -> None:
    fires = fires_between(every("3 days at 10:00"), utc(2024, 5, 1), utc(2024, 5, 20), limit=20)
    assert all((fire.date() - ANCHOR_DATE).days % 3 == 0 and fire.hour == 10 for fire in fires)
    assert all(b - a == dt.timedelta(days=3) for a, b in itertools.pairwise(fires))
    assert len(fires) == 6
    weekly = fires_between(every("2 weeks", timezone=NY), utc(2024, 5, 1), utc(2024, 7, 1), limit=20)
    assert [f.astimezone(ZoneInfo(NY)).weekday() for f in weekly] == [0] * len(weekly)
    assert all(f.astimezone(ZoneInfo(NY)).time() == dt.time(0) for f in weekly)
    assert all(((f.astimezone(ZoneInfo(NY)).date() - ANCHOR_DATE).days // 7) % 2 == 0 for f in weekly)
    assert len(weekly) == 4
    assert next_fire(every("week"), utc(2024, 5, 1)) == utc(2024, 5, 6)  # Monday 00:00


def test_weekday_rules() -> None:
    monday_nine = every("monday at 09:00", timezone=NY)
    assert next_fire(monday_nine, utc(2024, 11, 1)) == utc(2024, 11, 4, 14)  # 09:00 EST
    assert next_fire(monday_nine, utc(2024, 10, 21, 12)) == utc(2024, 10, 21, 13)  # 09:00 EDT, same day
    assert next_fire(monday_nine, utc(2024, 10, 21, 13)) == utc(2024, 10, 28, 13)  # strictly after
    assert next_fire(every("mondays at 09:00", timezone=NY), utc(2024, 11, 1)) == utc(2024, 11, 4, 14)
    assert next_fire(every("sunday"), utc(2024, 11, 1)) == utc(2024, 11, 3)


# ------------------------------------------------------------------------------------------------------- DST


def test_spring_forward_skipped_time_fires_at_the_transition() -> None:
    daily = cron("30 2 * * *", timezone=AMS)
    fires = fires_between(daily, utc(2024, 3, 29, 12), utc(2024, 4, 1, 12), limit=10)
    assert fires == [
        utc(2024, 3, 30, 1, 30),  # 02:30 CET
        utc(2024, 3, 31, 1, 0),  # 02:30 does not exist: 03:00 CEST, the moment of the jump
        utc(2024, 4, 1, 0, 30),  # 02:30 CEST
    ]
    ny = fires_between(cron("30 2 * * *", timezone=NY), utc(2024, 3, 9, 12), utc(2024, 3, 11, 12), limit=10)
    assert ny == [utc(2024, 3, 10, 7, 0), utc(2024, 3, 11, 6, 30)]  # 03:00 EDT, then 02:30 EDT
    assert fires_between(
        every("day at 02:30", timezone=AMS), utc(2024, 3, 30, 12), utc(2024, 3, 31, 12), limit=5
    ) == [utc(2024, 3, 31, 1, 0)]


def test_skipped_times_of_one_gap_collapse_into_one_fire() -> None:
    fires = fires_between(
        cron("0,30 2 * * *", timezone=AMS), utc(2024, 3, 30, 12), utc(2024, 3, 31, 12), limit=5
    )
    assert fires == [utc(2024, 3, 31, 1, 0)]


def test_fall_back_repeated_time_fires_once() -> None:
    daily = cron("30 2 * * *", timezone=AMS)
    fires = fires_between(daily, utc(2024, 10, 26, 12), utc(2024, 10, 28, 12), limit=10)
    assert fires == [utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)]  # 02:30 CEST (first), 02:30 CET
    # starting inside the fold, after the first occurrence: the second one is not a fire
    assert next_fire(daily, utc(2024, 10, 27, 0, 45)) == utc(2024, 10, 28, 1, 30)
    assert next_fire(daily, utc(2024, 10, 27, 1, 30)) == utc(2024, 10, 28, 1, 30)
    ny = fires_between(cron("30 1 * * *", timezone=NY), utc(2024, 11, 2, 12), utc(2024, 11, 4, 12), limit=10)
    assert ny == [utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)]  # 01:30 EDT once, then 01:30 EST
    assert fires_between(
        every("day at 02:30", timezone=AMS), utc(2024, 10, 26, 12), utc(2024, 10, 27, 12), limit=5
    ) == [utc(2024, 10, 27, 0, 30)]


def test_fixed_hours_across_fall_back_do_not_repeat() -> None:
    fires = fires_between(
        cron("0 1,2,3 * * *", timezone=NY), utc(2024, 11, 3), utc(2024, 11, 3, 12), limit=10
    )
    assert fires == [
        utc(2024, 11, 3, 5),
        utc(2024, 11, 3, 7),
        utc(2024, 11, 3, 8),
    ]  # 01:00 EDT, 02:00, 03:00 EST


@pytest.mark.parametrize(
    "timezone, spring_day, fall_day",
    [(AMS, dt.date(2024, 3, 31), dt.date(2024, 10, 27)), (NY, dt.date(2024, 3, 10), dt.date(2024, 11, 3))],
)
def test_hourly_cron_fires_every_real_hour_across_dst(
    timezone: str, spring_day: dt.date, fall_day: dt.date
) -> None:
    hourly = cron("0 * * * *", timezone=timezone)
    zone = ZoneInfo(timezone)
    for day, local_hours in [(spring_day, 23), (fall_day, 25)]:
        start = dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(UTC)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone).astimezone(UTC)
        fires = fires_between(
            hourly, start - dt.timedelta(seconds=1), end - dt.timedelta(seconds=1), limit=100
        )
        assert len(fires) == local_hours  # the local day has 23 / 25 real hours
        assert fires[0] == start
        assert all(b - a == HOUR for a, b in itertools.pairwise(fires))  # no duplicate, no gap
        utc_day = fires_between(hourly, start, start + 24 * HOUR, limit=100)
        assert len(utc_day) == 24


def test_hourly_cron_inside_the_fold() -> None:
    hourly = cron("0 * * * *", timezone=AMS)
    assert next_fire(hourly, utc(2024, 10, 27, 0, 30)) == utc(2024, 10, 27, 1)  # 02:30 CEST -> 02:00 CET
    assert next_fire(hourly, utc(2024, 10, 27, 1, 30)) == utc(2024, 10, 27, 2)  # 02:30 CET -> 03:00 CET
    quarter = fires_between(
        cron("*/20 * * * *", timezone=NY), utc(2024, 11, 3, 5), utc(2024, 11, 3, 8), limit=20
    )
    assert len(quarter) == 9 and all(
        b - a == dt.timedelta(minutes=20) for a, b in itertools.pairwise(quarter)
    )


def test_minute_cron_skips_the_spring_gap_without_duplicates() -> None:
    fires = fires_between(
        cron("30 * * * *", timezone=AMS), utc(2024, 3, 30, 23), utc(2024, 3, 31, 3), limit=10
    )
    assert fires == [
        utc(2024, 3, 30, 23, 30),
        utc(2024, 3, 31, 0, 30),
        utc(2024, 3, 31, 1, 30),
        utc(2024, 3, 31, 2, 30),
    ]


def _reference_fires(
    expr: str, timezone: str, every_hour: bool, start: dt.datetime, end: dt.datetime
) -> list:
    """Fires in (start, end] by brute force: scan every UTC minute, and every local minute for the gap rule."""
    zone = ZoneInfo(timezone)
    fires: set[dt.datetime] = set()
    transitions = []
    instant = start
    while instant <= end:
        local = instant.astimezone(zone)
        if local.utcoffset() != (instant - dt.timedelta(minutes=1)).astimezone(zone).utcoffset():
            transitions.append(instant)
        wall = local.replace(tzinfo=None)
        repeated = (
            wall.replace(tzinfo=zone, fold=0).utcoffset() != wall.replace(tzinfo=zone, fold=1).utcoffset()
        )
        if (
            instant > start
            and croniter.match(expr, wall)
            and not (repeated and local.fold == 1 and not every_hour)
        ):
            fires.add(instant)
        instant += dt.timedelta(minutes=1)
    if not every_hour:
        wall = start.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        while wall <= end.astimezone(zone).replace(tzinfo=None):
            exists = wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall
            if not exists and croniter.match(expr, wall):
                (transition,) = [
                    t for t in transitions if abs(t - wall.replace(tzinfo=UTC)) < dt.timedelta(days=1)
                ]
                if start < transition <= end:
                    fires.add(transition)
            wall += dt.timedelta(minutes=1)
    return sorted(fires)


@pytest.mark.parametrize(
    "expr, timezone, every_hour, day",
    [
        ("0 * * * *", AMS, True, dt.date(2024, 3, 31)),
        ("0 * * * *", AMS, True, dt.date(2024, 10, 27)),
        ("30 2 * * *", AMS, False, dt.date(2024, 3, 31)),
        ("30 2 * * *", AMS, False, dt.date(2024, 10, 27)),
        ("*/20 * * * *", NY, True, dt.date(2024, 3, 10)),
        ("0 0-23 * * *", AMS, True, dt.date(2024, 10, 27)),  # an hour field listing all hours is "every hour"
        ("30 */1 * * *", NY, True, dt.date(2024, 3, 10)),
        ("*/20 * * * *", NY, True, dt.date(2024, 11, 3)),
        ("0,30 1,2 * * *", NY, False, dt.date(2024, 3, 10)),
        ("0,30 1,2 * * *", NY, False, dt.date(2024, 11, 3)),
        ("*/10 1-3 * * sun", NY, False, dt.date(2024, 11, 3)),
        ("45 * * * *", "Australia/Lord_Howe", True, dt.date(2024, 4, 7)),  # half-hour DST: 02:00 -> 01:30
        ("45 * * * *", "Australia/Lord_Howe", True, dt.date(2024, 10, 6)),  # 02:00 -> 02:30
        ("15 2 * * *", "Australia/Lord_Howe", False, dt.date(2024, 10, 6)),
    ],
)
def test_cron_agrees_with_brute_force_around_dst(
    expr: str, timezone: str, every_hour: bool, day: dt.date
) -> None:
    schedule = cron(expr, timezone=timezone)
    start = dt.datetime.combine(day, dt.time(0), tzinfo=UTC) - 12 * HOUR
    end = start + 48 * HOUR
    expected = _reference_fires(expr, timezone, every_hour, start, end)
    assert fires_between(schedule, start, end, limit=1000) == expected
    # and next_fire from any point (inside folds and gaps too) is the next expected fire
    instant = start
    while instant < expected[-1]:
        assert next_fire(schedule, instant) == min(f for f in expected if f > instant), instant
        instant += dt.timedelta(minutes=7, seconds=30)


# -------------------------------------------------------------------------------------------------- catch-up


def test_catchup_none_skips_missed_fires() -> None:
    schedule = cron("0 * * * *", catchup=CatchupPolicy.none)
    assert catchup_fires(schedule, utc(2024, 5, 1, 3), utc(2024, 5, 1, 7, 30)) == []


def test_catchup_latest_gives_the_most_recent_missed_fire() -> None:
    schedule = cron("0 * * * *", catchup=CatchupPolicy.latest)
    assert catchup_fires(schedule, utc(2024, 5, 1, 3), utc(2024, 5, 1, 7, 30)) == [utc(2024, 5, 1, 7)]
    assert catchup_fires(schedule, utc(2024, 5, 1, 7), utc(2024, 5, 1, 7, 30)) == []  # nothing missed
    assert catchup_fires(schedule, utc(2024, 5, 1, 7), utc(2024, 5, 1, 8)) == [
        utc(2024, 5, 1, 8)
    ]  # now included
    yearly = cron("0 0 1 1 *", catchup=CatchupPolicy.latest)
    assert catchup_fires(yearly, utc(2020, 1, 1), utc(2024, 6, 1)) == [utc(2024, 1, 1)]
    assert catchup_fires(yearly, utc(2024, 1, 1), utc(2024, 6, 1)) == []


def test_catchup_all_gives_every_missed_fire_oldest_first() -> None:
    schedule = cron("0 * * * *", catchup=CatchupPolicy.all)
    fires = catchup_fires(schedule, utc(2024, 5, 1, 3), utc(2024, 5, 1, 7, 30))
    assert fires == [utc(2024, 5, 1, 4), utc(2024, 5, 1, 5), utc(2024, 5, 1, 6), utc(2024, 5, 1, 7)]


def test_catchup_all_is_bounded_and_keeps_the_most_recent() -> None:
    schedule = cron("0 * * * *", catchup=CatchupPolicy.all, max_catchup_runs=2)
    assert catchup_fires(schedule, utc(2024, 5, 1, 3), utc(2024, 5, 1, 7, 30)) == [
        utc(2024, 5, 1, 6),
        utc(2024, 5, 1, 7),
    ]
    daily = every("day at 00:00", catchup=CatchupPolicy.all, max_catchup_runs=3)
    assert catchup_fires(daily, utc(2020, 1, 1), utc(2024, 6, 15, 12)) == [
        utc(2024, 6, 13), utc(2024, 6, 14), utc(2024, 6, 15),
    ]  # fmt: skip
    # a one-second cron missed for four years: still only the last max_catchup_runs, computed quickly
    seconds = cron("* * * * * *", catchup=CatchupPolicy.all, max_catchup_runs=3)
    assert catchup_fires(seconds, utc(2020, 1, 1), utc(2024, 1, 1)) == [
        utc(2023, 12, 31, 23, 59, 58), utc(2023, 12, 31, 23, 59, 59), utc(2024, 1, 1),
    ]  # fmt: skip


@pytest.mark.parametrize("policy", list(CatchupPolicy))
def test_never_fired_schedule_does_not_catch_up(policy: CatchupPolicy) -> None:
    assert catchup_fires(cron("0 * * * *", catchup=policy), None, utc(2024, 5, 1, 7, 30)) == []


def test_catchup_across_fall_back_counts_real_hours() -> None:
    schedule = cron("0 * * * *", timezone=AMS, catchup=CatchupPolicy.all)
    fires = catchup_fires(schedule, utc(2024, 10, 26, 23), utc(2024, 10, 27, 3))
    assert fires == [utc(2024, 10, 27, 0), utc(2024, 10, 27, 1), utc(2024, 10, 27, 2), utc(2024, 10, 27, 3)]
