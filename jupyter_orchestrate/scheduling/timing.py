"""When a :class:`~jupyter_orchestrate.models.Schedule` fires: validation, next fire times, catch-up.

Pure functions: no I/O, and the wall clock is never read. Every instant is passed in and returned as an
*aware* :class:`datetime.datetime`; inputs in any fixed offset are accepted and converted, outputs are always
in UTC (``tzinfo=datetime.timezone.utc``). Naive datetimes are refused with :class:`ValueError`.

Public API
----------
- :func:`schedule_problems` -- ``(field, message)`` pairs; empty when the schedule is valid.
- :func:`parse_every` -- an ``every`` rule as an :class:`EveryRule` (interval, unit, at_time, start_day).
- :func:`next_fire` -- the first fire strictly after an instant.
- :func:`fires_between` -- the fires in ``(start, end]``, at most ``limit``.
- :func:`catchup_fires` -- the missed fires to start now, per ``Schedule.catchup``.

``Schedule.paused`` is deliberately ignored here: this module says *when* a schedule would fire; whether a
paused schedule fires, and which instant counts as its last fire when it is resumed, is the scheduler's call.

Cron expressions (``Schedule.cron``)
------------------------------------
Parsed and matched by croniter (day-of-month and day-of-week are OR-ed when both are restricted, as in Vixie
cron; names such as ``mon`` and ``jan`` and croniter's ``L``/``#``/``W`` work). Exactly 5 or 6
whitespace-separated fields:

- 5 fields: ``minute hour day-of-month month day-of-week``;
- 6 fields: ``second minute hour day-of-month month day-of-week`` -- the seconds field comes **first**
  (croniter's ``second_at_beginning=True``, as in Quartz/Spring), so ``* * * * * *`` fires every second and
  ``30 0 * * * *`` fires at second 30 of every hour's first minute.

croniter's 7-field form (with a year) and the ``@daily``-style aliases are refused, and so is an expression
that never matches a date (``0 0 30 2 *``).

``every`` rules (``Schedule.every``)
------------------------------------
The grammar is that of the ``schedule`` library's fluent API, ``schedule.every(N).<unit>.at(<time>)``,
written as words. Matching is case-insensitive and a leading ``every`` is optional::

    [every] [N] <unit> [at <time>]

- ``<unit>``: ``second(s) minute(s) hour(s) day(s) week(s)`` or a weekday ``monday`` .. ``sunday`` (the
  plural ``mondays`` is accepted as a synonym). ``N`` is a whole number >= 1, default 1. As in the library,
  a singular unit or a weekday only goes with N = 1 (``2 second`` -> "Use seconds instead of second").
- ``<time>`` (as ``Job.at``): ``HH:MM`` or ``HH:MM:SS`` for days and weekdays (two-digit hour), ``MM:SS`` or
  ``:MM`` for hours, ``:SS`` for minutes; seconds and weeks take no ``at``.

The words are turned into a real ``schedule.Scheduler().every(N).<unit>.at(<time>)`` job, so the library
itself accepts or rejects the rule (its error message is reported), and the job's fields ``interval``,
``unit``, ``at_time`` and ``start_day`` are read back into an :class:`EveryRule`. The job is never given a
function nor scheduled, so the library never reads ``datetime.now()``: fire times are computed here from the
passed-in instant. ``at``'s own ``tz`` argument (which needs pytz) is not used; ``Schedule.timezone`` is.

What the rule means (deterministic across restarts: a fire time depends only on the rule, the timezone and
``after``, never on when a scheduler started -- unlike the library, which counts from "now"):

- **Interval units** (``seconds``, ``minutes``, ``hours``) measure real elapsed time. The rule fires at the
  instants ``ANCHOR + at_offset + k * N units`` for every integer ``k``, where ``ANCHOR`` is the local
  midnight starting :data:`ANCHOR_DATE` (Monday 2000-01-03) in the schedule's timezone, converted to UTC,
  and ``at_offset`` is the ``at`` time (``hour at :30`` -> 30 minutes; ``minute at :15`` -> 15 seconds).
  So ``15 minutes`` fires at :00, :15, :30, :45 of the local hour (for whole-quarter-hour UTC offsets),
  ``hour`` at every real hour, and DST changes neither the spacing nor duplicate or drop a fire; a period
  that does not divide a day (``7 minutes``) just continues across midnight. ``6 hours`` fires at 00/06/12/18
  local while the offset is the one in force on the anchor day and at 01/07/13/19 after a +1h DST change:
  for wall-clock times use ``day at ..`` or cron.
- **Calendar units** (``days``, ``weeks``, weekdays) are local wall-clock times: ``N days at T`` fires at
  local time ``T`` (default ``00:00``) on the dates whose distance in days from :data:`ANCHOR_DATE` is a
  multiple of N; ``N weeks`` at ``00:00`` on the Mondays whose distance in weeks from it is a multiple of N;
  ``monday at T`` every Monday at ``T`` (default ``00:00``). The library would use the time of day at which
  the job was created when no ``at`` is given; here it is midnight.

Time zones and DST
------------------
``Schedule.timezone`` is an IANA name resolved with :class:`zoneinfo.ZoneInfo`. Cron expressions are iterated
by croniter in that zone (aware datetimes), and the calendar ``every`` rules turn each local wall time into an
instant with croniter too (a one-time cron of it), so the DST semantics are croniter's:

- a wall time that exists once fires at that instant;
- a wall time that does **not exist** (the spring-forward gap) fires once at the transition instant, the
  first instant after the gap: a daily ``02:30`` in Europe/Amsterdam on 2024-03-31 (02:00 -> 03:00) fires at
  03:00+02:00 = 01:00 UTC; in America/New_York on 2024-03-10 at 03:00-04:00 = 07:00 UTC. Several skipped wall
  times of one gap collapse into that one fire. A cron whose *hour* field matches every hour (``*``,
  ``*/1``, ``0-23``) fires every real hour: ``0 * * * *`` fires 23 times on that day, no duplicate;
- a cron whose hour field matches every hour fires at both occurrences of a repeated wall time (the
  fall-back hour), so that it keeps firing every real hour: ``0 * * * *`` fires at 00:00, 01:00, 02:00 UTC
  on 2024-10-27 (local 02:00+02:00, 02:00+01:00, 03:00+01:00).

**One difference from croniter**, the Vixie-cron rule: a wall time that occurs **twice** fires **once**, at
its first occurrence (the pre-transition offset, PEP 495 ``fold=0``), when the rule names fixed hours (a cron
whose hour field is not every hour, a calendar ``every`` rule): a daily ``02:30`` in Europe/Amsterdam on
2024-10-27 fires at 02:30+02:00 = 00:30 UTC only, where croniter alone also yields 02:30+01:00 = 01:30 UTC.
A job that runs "once a day" must not run twice on the day the clocks go back (this is what
``tests/test_schedule_timing.py`` asserts); :func:`_cron_fires` drops croniter's second occurrences
(``fold=1``) for such rules.

Catch-up (``Schedule.catchup``)
-------------------------------
A fire is *missed* when ``last_fire < fire <= now``. ``none``: nothing; ``latest``: the most recent missed
fire; ``all``: every missed fire, oldest first, at most ``max_catchup_runs`` -- the most recent ones are
kept and older ones dropped. A schedule that never fired (``last_fire=None``) has nothing to catch up.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import schedule as _schedule_lib
from croniter import croniter

from jupyter_orchestrate.models import CatchupPolicy, Schedule

__all__ = [
    "ANCHOR_DATE",
    "EveryRule",
    "catchup_fires",
    "fires_between",
    "next_fire",
    "parse_every",
    "schedule_problems",
]

UTC = dt.timezone.utc

#: The local date whose midnight anchors interval rules and whose day/week count aligns ``N days`` and
#: ``N weeks``. A Monday, so that weeks start on Mondays; recent enough that present-day UTC offsets
#: (e.g. Asia/Kathmandu's +05:45, adopted in 1986) already applied.
ANCHOR_DATE = dt.date(2000, 1, 3)

#: The (naive) instant from which validation asks croniter for a first match.
_CRON_PROBE = dt.datetime(2000, 1, 1)

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_UNIT_WORDS = {
    "second", "seconds", "minute", "minutes", "hour", "hours", "day", "days", "week", "weeks",
}  # fmt: skip
_INTERVAL_UNITS = ("seconds", "minutes", "hours")
_NUMBER = re.compile(r"[0-9]+")
_EVERY_SHAPE = (
    "expected '[every] [N] <unit> [at <time>]', e.g. '15 minutes', 'day at 06:30', 'monday at 09:00'"
)


@dataclass(frozen=True)
class EveryRule:
    """An ``every`` rule as the ``schedule`` library understood it (the fields of its ``Job``).

    Attributes:
        interval: N, a whole number >= 1 (``Job.interval``).
        unit: ``"seconds"``, ``"minutes"``, ``"hours"``, ``"days"`` or ``"weeks"`` (``Job.unit``; a weekday
            rule has unit ``"weeks"``).
        at_time: the ``at`` time or None (``Job.at_time``). For ``hours`` only minute and second are set,
            for ``minutes`` only the second.
        start_day: ``"monday"`` .. ``"sunday"`` for a weekday rule, else None (``Job.start_day``).
    """

    interval: int
    unit: str
    at_time: dt.time | None = None
    start_day: str | None = None


@dataclass(frozen=True)
class _Cron:
    expr: str
    with_seconds: bool  # six fields, seconds first
    every_hour: bool  # the hour field matches all 24 hours


_Rule = _Cron | EveryRule


# --------------------------------------------------------------------------------------------------- parsing


def _zone(name: str) -> ZoneInfo:
    """The :class:`ZoneInfo` for an IANA name; :class:`ValueError` naming the zone if it is unknown."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError, TypeError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(
            f"unknown timezone {name!r}: expected an IANA time zone name such as 'UTC' or 'Europe/Amsterdam'"
        ) from None


def _parse_cron(expr: str) -> _Cron:
    """Validate a 5- or 6-field cron expression; :class:`ValueError` with a readable message if invalid."""
    fields = expr.split()
    if len(fields) not in (5, 6):
        raise ValueError(
            f"cron expression {expr!r} has {len(fields)} field(s); expected 5 (minute hour day-of-month month "
            "day-of-week) or 6 (second minute hour day-of-month month day-of-week)"
        )
    normalized = " ".join(fields)
    with_seconds = len(fields) == 6
    try:
        itr = croniter(normalized, _CRON_PROBE, ret_type=dt.datetime, second_at_beginning=with_seconds)
    except (ValueError, KeyError, TypeError, IndexError) as exc:  # CroniterError is a ValueError
        raise ValueError(f"invalid cron expression {expr!r}: {exc}") from None
    try:
        itr.get_next(dt.datetime)
    except (ValueError, OverflowError):  # CroniterBadDateError
        raise ValueError(f"cron expression {expr!r} never matches a date") from None
    hours = itr.expanded[1]  # croniter keeps [minute, hour, day, month, day-of-week(, second)]
    # croniter already folds "*/1", "0-23" and a list of all 24 hours into ["*"]; the set test is a fallback.
    every_hour = hours == ["*"] or set(range(24)) <= set(hours)
    return _Cron(normalized, with_seconds, every_hour)


def parse_every(rule: str) -> EveryRule:
    """Parse an ``every`` rule with the ``schedule`` library's grammar (see the module docstring).

    Args:
        rule: e.g. ``"15 minutes"``, ``"every hour at :30"``, ``"day at 06:30"``, ``"monday at 09:00"``.

    Returns:
        The :class:`EveryRule` read back from the ``schedule.Job`` built from the rule's words.

    Raises:
        ValueError: the rule does not have the shape ``[every] [N] <unit> [at <time>]``, N is not a whole
            number >= 1, or the ``schedule`` library rejects the combination (its message is included).
    """
    if not isinstance(rule, str) or not rule.strip():
        raise ValueError(f"empty every rule: {_EVERY_SHAPE}")
    tokens = rule.lower().split()
    if tokens[0] == "every":
        tokens = tokens[1:]
    at: str | None = None
    if "at" in tokens:
        position = tokens.index("at")
        if position != len(tokens) - 2:
            raise ValueError(f"invalid every rule {rule!r}: 'at' must be followed by exactly one time")
        at, tokens = tokens[-1], tokens[:position]
    if len(tokens) == 2 and _NUMBER.fullmatch(tokens[0]):
        interval, word = int(tokens[0]), tokens[1]
        if interval < 1:
            raise ValueError(f"invalid every rule {rule!r}: the interval must be a whole number >= 1")
    elif len(tokens) == 1:
        interval, word = 1, tokens[0]
    else:
        raise ValueError(f"invalid every rule {rule!r}: {_EVERY_SHAPE}")
    if word in _UNIT_WORDS:
        attribute = word
    elif word in _WEEKDAYS or (word.endswith("s") and word[:-1] in _WEEKDAYS):
        attribute = word.removesuffix("s")
    else:
        raise ValueError(
            f"invalid every rule {rule!r}: unknown unit {word!r} (seconds, minutes, hours, days, weeks, or a "
            "weekday monday..sunday)"
        )
    try:
        job = getattr(_schedule_lib.Scheduler().every(interval), attribute)
        if at is not None:
            job = job.at(at)
    except _schedule_lib.ScheduleError as exc:
        message = str(exc).replace("({} ", f"({at} ")  # the library leaves one placeholder unformatted
        raise ValueError(f"invalid every rule {rule!r}: {message}") from None
    return EveryRule(interval=job.interval, unit=job.unit, at_time=job.at_time, start_day=job.start_day)


def schedule_problems(schedule: Schedule) -> list[tuple[str, str]]:
    """Everything wrong with a schedule's timing fields, as ``(field, message)`` pairs.

    Checks, all of them (not just the first failure):

    - exactly one of ``cron`` and ``every`` is set (reported on field ``"cron"``, whether none or both are);
    - ``cron`` has 5 or 6 fields (6 = seconds first), croniter accepts it, and it matches some date;
    - ``every`` follows the ``schedule`` library's grammar (:func:`parse_every`);
    - ``timezone`` is a known IANA zone (the message names the bad zone).

    Args:
        schedule: the schedule to check; ``name``, ``paused``, ``parameters`` and the catch-up fields are
            not looked at (pydantic already bounds ``max_catchup_runs``).

    Returns:
        A list of ``(field, message)`` with ``field`` one of ``"cron"``, ``"every"``, ``"timezone"``; empty
        when the schedule is valid. Never raises for bad values.
    """
    problems: list[tuple[str, str]] = []
    has_cron = schedule.cron is not None and schedule.cron.strip() != ""
    has_every = schedule.every is not None and schedule.every.strip() != ""
    if has_cron and has_every:
        problems.append(("cron", "set exactly one of 'cron' or 'every', not both"))
    elif not has_cron and not has_every:
        problems.append(
            ("cron", "set exactly one of 'cron' (a cron expression) or 'every' (e.g. '15 minutes')")
        )
    if has_cron:
        try:
            _parse_cron(schedule.cron)  # type: ignore[arg-type]
        except ValueError as exc:
            problems.append(("cron", str(exc)))
    if has_every:
        try:
            parse_every(schedule.every)  # type: ignore[arg-type]
        except ValueError as exc:
            problems.append(("every", str(exc)))
    try:
        _zone(schedule.timezone)
    except ValueError as exc:
        problems.append(("timezone", str(exc)))
    return problems


@functools.lru_cache(maxsize=512)
def _compile_fields(cron: str | None, every: str | None, timezone: str) -> tuple[_Rule, ZoneInfo]:
    problems = schedule_problems(Schedule(cron=cron, every=every, timezone=timezone))
    if problems:
        raise ValueError(
            "invalid schedule: " + "; ".join(f"{field}: {message}" for field, message in problems)
        )
    zone = _zone(timezone)
    if cron is not None and cron.strip():
        return _parse_cron(cron), zone
    return parse_every(every), zone  # type: ignore[arg-type]


def _compile(schedule: Schedule) -> tuple[_Rule, ZoneInfo]:
    return _compile_fields(schedule.cron, schedule.every, schedule.timezone)


def _as_utc(value: dt.datetime, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(UTC)


# ------------------------------------------------------------------------------------------- wall clock -> UTC


def _fixed_wall_time(wall: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The one instant the naive local wall time ``wall`` fires at, by croniter's rules as for a cron of that
    one time: itself; the first occurrence of a repeated time; the transition instant for a skipped time."""
    expr = f"{wall.second} {wall.minute} {wall.hour} {wall.day} {wall.month} *"
    start = (wall - dt.timedelta(days=1)).replace(tzinfo=zone)
    first: dt.datetime = croniter(expr, start, ret_type=dt.datetime, second_at_beginning=True).get_next(
        dt.datetime
    )
    return first.astimezone(UTC)


# -------------------------------------------------------------------------------------------------- iteration


def _cron_fires(cron: _Cron, zone: ZoneInfo, after: dt.datetime) -> Iterator[dt.datetime]:
    """Fire instants of a cron expression strictly after ``after``, ascending, without end.

    croniter iterates in the zone itself (aware datetimes: each real hour once, a skipped wall time at the
    transition instant, a repeated one at both occurrences); the one rule added here is Vixie cron's for a
    cron with fixed hours: the second occurrence of a repeated wall time (``fold=1``) is not a fire. Times
    never go back, so skipped wall times of one gap that croniter maps to the same instant fire once.
    """
    start = after.astimezone(zone)
    walls = croniter(cron.expr, start, ret_type=dt.datetime, second_at_beginning=cron.with_seconds)
    last = after
    while True:
        local = walls.get_next(dt.datetime)
        if local.fold == 1 and not cron.every_hour:
            continue
        instant = local.astimezone(UTC)
        if instant > last:
            yield instant
            last = instant


def _every_fires(rule: EveryRule, zone: ZoneInfo, after: dt.datetime) -> Iterator[dt.datetime]:
    """Fire instants of an ``every`` rule strictly after ``after``, ascending, without end."""
    at = rule.at_time or dt.time(0)
    if rule.unit in _INTERVAL_UNITS:
        period = dt.timedelta(**{rule.unit: rule.interval})
        offset = dt.timedelta(hours=at.hour, minutes=at.minute, seconds=at.second)
        base = _fixed_wall_time(dt.datetime.combine(ANCHOR_DATE, dt.time(0)), zone) + offset
        instant = base + ((after - base) // period + 1) * period
        while True:
            yield instant
            instant += period
    # Calendar rules: local dates, starting two days back (a wall time maps to an instant at most a DST
    # shift away from it), aligned forward to the rule.
    day = after.astimezone(zone).date() - dt.timedelta(days=2)
    if rule.start_day is not None:
        step = 7
        day += dt.timedelta(days=(_WEEKDAYS.index(rule.start_day) - day.weekday()) % 7)
    else:
        step = rule.interval * (7 if rule.unit == "weeks" else 1)
        day += dt.timedelta(days=-(day - ANCHOR_DATE).days % step)
    last = after
    while True:
        instant = _fixed_wall_time(dt.datetime.combine(day, at), zone)
        if instant > last:
            yield instant
            last = instant
        day += dt.timedelta(days=step)


def _fires_after(rule: _Rule, zone: ZoneInfo, after: dt.datetime) -> Iterator[dt.datetime]:
    if isinstance(rule, _Cron):
        return _cron_fires(rule, zone, after)
    return _every_fires(rule, zone, after)


# ------------------------------------------------------------------------------------------------- public API


def next_fire(schedule: Schedule, after: dt.datetime) -> dt.datetime:
    """The first fire time of ``schedule`` strictly after ``after``.

    Computed in ``schedule.timezone`` with the DST rules of the module docstring (a repeated wall time fires
    once, a skipped one at the transition instant, an every-hour cron every real hour); interval ``every``
    rules are anchored to :data:`ANCHOR_DATE` (module docstring), so the result does not depend on when
    anything started. ``paused`` is ignored.

    Args:
        schedule: a valid schedule (see :func:`schedule_problems`).
        after: an aware datetime (any offset; UTC expected). Sub-second parts are honoured: the result is
            strictly greater.

    Returns:
        An aware UTC datetime, with whole seconds.

    Raises:
        ValueError: the schedule is invalid (all its problems in the message), or ``after`` is naive.
        TypeError: ``after`` is not a datetime.
    """
    rule, zone = _compile(schedule)
    return next(_fires_after(rule, zone, _as_utc(after, "after")))


def fires_between(schedule: Schedule, start: dt.datetime, end: dt.datetime, limit: int) -> list[dt.datetime]:
    """The fire times in the half-open interval ``(start, end]``, oldest first, at most ``limit`` of them.

    Args:
        schedule: a valid schedule; ``paused`` is ignored.
        start: aware datetime, excluded.
        end: aware datetime, included. ``end <= start`` gives ``[]``.
        limit: the maximum number of fire times returned (the *oldest* ones); must be >= 1.

    Returns:
        Aware UTC datetimes, strictly ascending, no duplicates.

    Raises:
        ValueError: ``limit < 1``, the schedule is invalid, or ``start``/``end`` is naive.
        TypeError: ``start``/``end`` is not a datetime.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    rule, zone = _compile(schedule)
    start_utc, end_utc = _as_utc(start, "start"), _as_utc(end, "end")
    fires: list[dt.datetime] = []
    if end_utc <= start_utc:
        return fires
    for instant in _fires_after(rule, zone, start_utc):
        if instant > end_utc or len(fires) >= limit:
            break
        fires.append(instant)
    return fires


def catchup_fires(schedule: Schedule, last_fire: dt.datetime | None, now: dt.datetime) -> list[dt.datetime]:
    """The missed fires to start now, according to ``schedule.catchup``.

    A fire is *missed* when ``last_fire < fire <= now`` (so a fire exactly at ``now`` is included: the caller
    need not also start it as "on time").

    - ``CatchupPolicy.none``: ``[]`` -- missed fires are skipped;
    - ``CatchupPolicy.latest``: ``[the most recent missed fire]``, or ``[]`` when none was missed;
    - ``CatchupPolicy.all``: every missed fire, oldest first, bounded by ``schedule.max_catchup_runs``: when
      more were missed, the most recent ``max_catchup_runs`` are returned and the older ones dropped.

    ``last_fire=None`` (the schedule never fired) returns ``[]``: a new schedule does not catch up on its
    past; it just waits for :func:`next_fire`. ``paused`` is ignored (the caller decides).

    The work is bounded by the number of fires returned, not by how long ago ``last_fire`` was: the window
    ending at ``now`` is widened (doubling from one minute) until it holds enough fires or reaches
    ``last_fire``.

    Args:
        schedule: a valid schedule.
        last_fire: aware datetime of the last recorded fire, or None.
        now: aware datetime, the current time as decided by the caller.

    Returns:
        Aware UTC datetimes, strictly ascending.

    Raises:
        ValueError: the schedule is invalid, or a datetime is naive.
        TypeError: ``last_fire`` (when not None) or ``now`` is not a datetime.
    """
    rule, zone = _compile(schedule)
    now_utc = _as_utc(now, "now")
    if last_fire is None:
        return []
    last_utc = _as_utc(last_fire, "last_fire")
    policy = CatchupPolicy(schedule.catchup)
    if policy is CatchupPolicy.none or now_utc <= last_utc:
        return []
    keep = 1 if policy is CatchupPolicy.latest else schedule.max_catchup_runs
    span = dt.timedelta(minutes=1)
    while True:
        lower = last_utc if now_utc - last_utc <= span else now_utc - span
        recent: deque[dt.datetime] = deque(maxlen=keep)
        for instant in _fires_after(rule, zone, lower):
            if instant > now_utc:
                break
            recent.append(instant)
        if len(recent) == keep or lower == last_utc:
            return list(recent)
        span *= 2
