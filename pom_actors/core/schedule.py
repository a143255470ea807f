"""Cron schedules (jobs, imports, purges) evaluated in the schedule's own time zone.

A cron expression names local wall-clock times. Daylight-saving changes are resolved so that
an outbound campaign never runs twice for one wall-clock time and never silently skips one:
- a wall time that happens twice (clocks go back) runs at its first occurrence only;
- a wall time that does not exist (clocks go forward) runs when the gap ends.
Croniter walks naive wall times; this module maps them to instants, which keeps the mapping
monotonic and so lets `next_run` and `due_runs` simply take the first instant past a bound.

A cron expression is bounded before croniter sees it (`MAX_CRON_CHARS`, `MAX_CRON_ITEMS` per
field, every number and step within its field): croniter takes `*/99999999999999999999` and
expands long lists at every parse. The director parses each campaign's schedule at every tick
through `parsed`, which keeps the last documents it validated.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic
from croniter import croniter

# Largest change of UTC offset at one transition (real zones shift by at most 2 h).
_MAX_SHIFT = timedelta(hours=3)

MAX_CRON_CHARS = 200
MAX_CRON_ITEMS = 60                  # comma-separated items in one field (a minute list: 0-59)
_FIELDS = (("minute", 59), ("hour", 23), ("day of month", 31), ("month", 12), ("day of week", 7))
_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_ITEM = re.compile(r"(?P<base>[*?]|[A-Za-z0-9#]+(?:-[A-Za-z0-9#]+)?)(?:/(?P<step>[0-9]+))?")
_NUMBER = re.compile(r"[0-9]+")


def cron_fault(cron: str) -> str | None:
    """Why `cron` (whitespace-normalised, at most MAX_CRON_CHARS) is out of bounds, or None;
    what croniter then refuses is refused by `Schedule`. Linear in its length."""
    if cron.startswith("@"):
        return None if cron in _MACROS else f"unknown macro {cron!r} (one of {', '.join(sorted(_MACROS))})"
    fields = cron.split(" ")
    if len(fields) != 5:
        return f"cron {cron!r} must have 5 fields (minute hour day month weekday)"
    for text, (name, top) in zip(fields, _FIELDS):
        items = text.split(",")
        if len(items) > MAX_CRON_ITEMS:
            return f"the {name} field has {len(items)} items (at most {MAX_CRON_ITEMS})"
        for item in items:
            found = _ITEM.fullmatch(item)
            if found is None:
                return f"the {name} field: {item[:20]!r} is not a value, a range or a step"
            if any(len(n) > 2 or int(n) > top for n in _NUMBER.findall(found["base"])):
                return f"the {name} field: {item[:20]!r} is beyond {top}"
            step = found["step"]
            if step is not None and (len(step) > 2 or not 1 <= int(step) <= top):
                return f"the {name} field: step {step[:20]} must be between 1 and {top}"
    return None


class Schedule(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    cron: str = pydantic.Field(max_length=MAX_CRON_CHARS)
    timezone: str = pydantic.Field("UTC", max_length=100)
    enabled: bool = True

    @pydantic.field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        value = " ".join(value.split())
        if (fault := cron_fault(value)) is not None:
            raise ValueError(fault)
        if not croniter.is_valid(value):
            raise ValueError(f"cron {value!r} is not a valid cron expression")
        try:
            croniter(value, datetime(2000, 1, 1)).get_next(datetime)
        except Exception as exc:  # croniter signals an impossible date with several types
            raise ValueError(f"cron {value!r} never fires") from exc
        return value

    @pydantic.field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


def parsed(document: dict) -> Schedule:
    """`Schedule(**document)`, validated once per distinct document (the director's tick)."""
    try:
        return _parsed(tuple(sorted(document.items())))
    except TypeError:                    # an unhashable value: refused by Schedule itself
        return Schedule(**document)


@lru_cache(maxsize=1024)
def _parsed(items: tuple) -> Schedule:
    return Schedule(**dict(items))


def _aware(at: datetime, name: str) -> None:
    if at.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of local wall time `wall` (first occurrence; end of a gap)."""
    utc = wall.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
    if utc.astimezone(zone).replace(tzinfo=None) == wall:
        return utc
    # Skipped wall time: fold=0 reads it with the old offset (after the transition), fold=1
    # with the new one (before it); search the transition instant in between.
    lo = wall.replace(tzinfo=zone, fold=1).astimezone(timezone.utc)
    new_offset = utc.astimezone(zone).utcoffset()
    lo_s, hi_s = 0, int((utc - lo).total_seconds())
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if (lo + timedelta(seconds=mid)).astimezone(zone).utcoffset() == new_offset:
            hi_s = mid
        else:
            lo_s = mid
    return lo + timedelta(seconds=hi_s)


def _wall(at: datetime, zone: ZoneInfo) -> datetime:
    return at.astimezone(zone).replace(tzinfo=None, fold=0)


def next_run(schedule: Schedule, after: datetime) -> datetime:
    """The first run strictly after `after`, as an aware UTC datetime (ignores `enabled`)."""
    _aware(after, "after")
    zone = ZoneInfo(schedule.timezone)
    walls = croniter(schedule.cron, _wall(after, zone))
    while True:
        run = _instant(walls.get_next(datetime), zone)
        if run > after:
            return run


def due_runs(schedule: Schedule, last_run: datetime | None, now: datetime) -> datetime | None:
    """The latest run time in (last_run, now], or None; missed runs coalesce into this one.

    `last_run` None means the schedule never ran, so its latest past run time is due; pass the
    schedule's creation time instead to run only at times after it was made. Disabled: None.
    """
    _aware(now, "now")
    if last_run is not None:
        _aware(last_run, "last_run")
    if not schedule.enabled:
        return None
    zone = ZoneInfo(schedule.timezone)
    walls = croniter(schedule.cron, _wall(now, zone) + _MAX_SHIFT)
    while True:
        run = _instant(walls.get_prev(datetime), zone)
        if run <= now:
            break
    if last_run is not None and run <= last_run:
        return None
    return run
