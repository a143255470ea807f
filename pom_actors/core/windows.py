"""Contact windows evaluated in the contact's local time zone(s).

A window is a wall-clock range on some weekdays, so it must be judged in the contact's own
zone, DST included (zoneinfo). When a contact has no explicit zone the candidates come from
the phone number; a number that maps to several zones is callable only when the window is open
in EVERY one of them, and a contact whose zone is unknown is never inside a window: calling at
the wrong local hour is a compliance fault, waiting is not.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import pydantic
from phonenumbers import timezone as phone_timezone
from phonenumbers.tzdata import TIMEZONE_LONGEST_PREFIX

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HORIZON = dt.timedelta(days=14)
_UTC = dt.timezone.utc
_UNKNOWN_ZONE = "Etc/Unknown"


def parse_local_time(value: Any) -> Any:
    """Accept "9:00" as well as "09:00" (pydantic alone wants two-digit hours)."""
    if isinstance(value, str) and ":" in value and len(value.strip().split(":")[0]) == 1:
        return "0" + value.strip()
    return value


class ContactWindow(pydantic.BaseModel):
    """Open on `days` from `start` (inclusive) to `end` (exclusive), contact-local wall time."""

    model_config = pydantic.ConfigDict(extra="forbid")

    days: list[str] = pydantic.Field(default_factory=lambda: list(DAYS), min_length=1)
    start: dt.time
    end: dt.time

    @pydantic.field_validator("days")
    @classmethod
    def _known_days(cls, days: list[str]) -> list[str]:
        normal = [d.strip().lower()[:3] for d in days]
        unknown = [d for d, n in zip(days, normal) if n not in DAYS]
        if unknown:
            raise ValueError(f"unknown day(s) {unknown}; use {', '.join(DAYS)}")
        return [d for d in DAYS if d in normal]

    _clock_times = pydantic.field_validator("start", "end", mode="before")(parse_local_time)

    @pydantic.field_validator("start", "end")
    @classmethod
    def _naive(cls, t: dt.time) -> dt.time:
        if t.tzinfo is not None:
            raise ValueError("a window time is contact-local; give it without a zone")
        return t

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> "ContactWindow":
        if self.start >= self.end:
            raise ValueError(f"start {self.start:%H:%M} must be before end {self.end:%H:%M}")
        return self

    def contains_local(self, local: dt.datetime) -> bool:
        """True when the local wall-clock datetime `local` lies inside the window."""
        return DAYS[local.weekday()] in self.days and self.start <= local.time() < self.end


@lru_cache(maxsize=1024)
def zone_info(name: str) -> ZoneInfo | None:
    """The IANA zone of that name, or None when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _zones_for_phone(phone: str) -> tuple[str, ...]:
    """Zones of an E.164 number, computed once per block of numbers that share every digit the
    zone data looks at (its prefixes have at most TIMEZONE_LONGEST_PREFIX digits): a parse
    costs ~60 µs, and a list of 100,000 numbers holds far fewer blocks."""
    spare = len(phone.lstrip("+")) - TIMEZONE_LONGEST_PREFIX
    block = phone[:-spare] if spare > 0 else phone
    zones = _BLOCK_ZONES.get(block)
    if zones is None:
        if len(_BLOCK_ZONES) >= _BLOCK_CACHE_SIZE:
            _BLOCK_ZONES.clear()
        zones = _BLOCK_ZONES[block] = phone_zones(phone)
    return zones


def phone_zones(phone: str) -> tuple[str, ...]:
    """Zones of one number, uncached: phonenumbers' time zones of its parse, () when unknown."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return ()
    names = phone_timezone.time_zones_for_number(number)
    if not names or _UNKNOWN_ZONE in names or any(zone_info(n) is None for n in names):
        return ()
    return tuple(names)


_BLOCK_ZONES: dict[str, tuple[str, ...]] = {}
_BLOCK_CACHE_SIZE = 200_000


def zones_for(explicit: Sequence[str] | None, phone: str | None) -> list[str]:
    """The contact's candidate zones: the explicit ones if any, else those of the E.164 number.

    An explicit zone that is not a valid IANA name makes the whole answer unknown (`[]`),
    as does a number that phonenumbers cannot place.
    """
    if isinstance(explicit, str):
        explicit = [explicit]
    names = [z.strip() for z in explicit or () if z and z.strip()]
    if names:
        if any(zone_info(z) is None for z in names):
            return []
        return list(dict.fromkeys(names))
    if phone and phone.strip():
        return list(_zones_for_phone(phone.strip()))
    return []


def _resolve(zones: Iterable[str]) -> list[ZoneInfo] | None:
    resolved = [zone_info(z) for z in dict.fromkeys(zones)]
    if not resolved or any(z is None for z in resolved):
        return None
    return resolved  # type: ignore[return-value]


def _aware(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("`now` must be a timezone-aware datetime")
    return now


def is_open(window: ContactWindow | None, zones: Sequence[str], now: dt.datetime) -> bool:
    """True when `now` is inside `window` in every zone; no window = open, no/unknown zone = closed."""
    _aware(now)
    if window is None:
        return True
    resolved = _resolve(zones)
    return resolved is not None and _open_in(window, resolved, now)


def _open_in(window: ContactWindow, zones: list[ZoneInfo], now: dt.datetime) -> bool:
    return all(window.contains_local(now.astimezone(z)) for z in zones)


def next_open(window: ContactWindow | None, zones: Sequence[str], now: dt.datetime) -> dt.datetime | None:
    """Earliest UTC instant >= `now` at which `is_open` holds, or None if not within 14 days.

    The open set only begins where some zone's wall clock reaches `start` or where a zone's
    UTC offset changes (a DST jump can land inside the window), so those instants are the only
    candidates to test besides `now` itself.
    """
    now = _aware(now).astimezone(_UTC)
    if window is None:
        return now
    resolved = _resolve(zones)
    if resolved is None:
        return None
    limit = now + HORIZON
    candidates = {now}
    for zone in resolved:
        candidates.update(_start_instants(window, zone, now, limit))
        candidates.update(_offset_changes(zone, now, limit))
    for instant in sorted(c for c in candidates if now <= c <= limit):
        if _open_in(window, resolved, instant):
            return instant
    return None


def _start_instants(window: ContactWindow, zone: ZoneInfo, now: dt.datetime,
                    limit: dt.datetime) -> Iterable[dt.datetime]:
    day = now.astimezone(zone).date() - dt.timedelta(days=1)
    last = limit.astimezone(zone).date() + dt.timedelta(days=1)
    while day <= last:
        if DAYS[day.weekday()] in window.days:
            for fold in (0, 1):
                local = dt.datetime.combine(day, window.start, tzinfo=zone).replace(fold=fold)
                yield local.astimezone(_UTC)
        day += dt.timedelta(days=1)


def _offset_changes(zone: ZoneInfo, now: dt.datetime, limit: dt.datetime) -> Iterable[dt.datetime]:
    """UTC instants in [now, limit] where the zone's offset changes (found to the second)."""
    step = dt.timedelta(hours=12)
    lo = now.replace(microsecond=0)
    while lo < limit:
        hi = lo + step
        if lo.astimezone(zone).utcoffset() != hi.astimezone(zone).utcoffset():
            yield _bisect_change(zone, lo, hi)
        lo = hi


def _bisect_change(zone: ZoneInfo, lo: dt.datetime, hi: dt.datetime) -> dt.datetime:
    before = lo.astimezone(zone).utcoffset()
    while hi - lo > dt.timedelta(seconds=1):
        mid = lo + dt.timedelta(seconds=(hi - lo).total_seconds() // 2)
        if mid.astimezone(zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return hi
