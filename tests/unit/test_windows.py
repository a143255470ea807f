import datetime as dt

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pom_actors.core.windows import ContactWindow, is_open, next_open, zones_for

UTC = dt.timezone.utc
NY = ["America/New_York"]


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def window(start: str, end: str, days: list[str] | None = None) -> ContactWindow:
    return ContactWindow(start=start, end=end, **({"days": days} if days is not None else {}))


# --- the model -------------------------------------------------------------------------

def test_window_defaults_to_every_day_and_normalises_days():
    assert window("09:00", "17:00").days == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    assert window("09:00", "17:00", ["Sat", "monday"]).days == ["mon", "sat"]


@pytest.mark.parametrize("kwargs", [
    {"start": "17:00", "end": "09:00"},
    {"start": "09:00", "end": "09:00"},
    {"start": "09:00", "end": "17:00", "days": ["funday"]},
    {"start": "09:00", "end": "17:00", "days": []},
    {"start": "09:00", "end": "17:00", "extra": 1},
])
def test_window_refuses_bad_definitions(kwargs):
    with pytest.raises(pydantic.ValidationError):
        ContactWindow(**kwargs)


# --- zones ----------------------------------------------------------------------------

def test_explicit_zones_win_over_the_number():
    assert zones_for(["Europe/Paris"], "+12125551234") == ["Europe/Paris"]
    assert zones_for("Europe/Paris", None) == ["Europe/Paris"]
    assert zones_for(["Europe/Paris", "Europe/Paris", "Asia/Tokyo"], None) == ["Europe/Paris", "Asia/Tokyo"]


def test_an_invalid_explicit_zone_makes_the_zone_unknown():
    assert zones_for(["Europe/Paris", "Mars/Olympus"], "+12125551234") == []


def test_zones_from_the_number():
    assert zones_for(None, "+12125551234") == ["America/New_York"]
    assert zones_for([], "+44 20 7946 0958") == ["Europe/London"]
    # North Dakota's area code spans Mountain and Central time.
    assert zones_for(None, "+17015551234") == ["America/Denver", "America/North_Dakota/Center"]
    # A US toll-free number could be anywhere in the NANP.
    assert {"America/New_York", "America/Los_Angeles", "Pacific/Honolulu"} <= set(zones_for(None, "+18005551234"))


@pytest.mark.parametrize("phone", [None, "", "garbage", "+999", "0612345678", "+441632960000"])
def test_unknown_numbers_have_no_zone(phone):
    assert zones_for(None, phone) == []


# --- is_open --------------------------------------------------------------------------

def test_no_window_is_always_open_and_no_zone_is_closed():
    assert is_open(None, [], utc(2026, 3, 9, 3))
    assert not is_open(window("00:00", "23:59"), [], utc(2026, 3, 9, 12))
    assert not is_open(window("00:00", "23:59"), ["Mars/Olympus"], utc(2026, 3, 9, 12))


def test_start_is_inclusive_and_end_exclusive():
    w = window("09:00", "17:00")   # Monday 2026-03-09, New York on EDT (UTC-4)
    assert not is_open(w, NY, utc(2026, 3, 9, 12, 59, 59))
    assert is_open(w, NY, utc(2026, 3, 9, 13, 0))
    assert is_open(w, NY, utc(2026, 3, 9, 20, 59, 59, 999999))
    assert not is_open(w, NY, utc(2026, 3, 9, 21, 0))


def test_days_are_local_days():
    w = window("09:00", "17:00", ["mon", "tue", "wed", "thu", "fri"])
    assert not is_open(w, NY, utc(2026, 3, 7, 15))                  # Saturday in New York
    assert not is_open(w, ["Asia/Tokyo"], utc(2026, 3, 8, 23, 30))    # Monday 08:30 in Tokyo
    assert is_open(w, ["Asia/Tokyo"], utc(2026, 3, 9, 0, 30))         # Monday 09:30 in Tokyo, Sunday in UTC


def test_naive_now_is_refused():
    with pytest.raises(ValueError):
        is_open(window("09:00", "17:00"), NY, dt.datetime(2026, 3, 9, 12))


def test_dst_change_new_york():
    w = window("09:00", "17:00")
    assert is_open(w, NY, utc(2026, 3, 7, 14))          # Sat 09:00 EST
    assert not is_open(w, NY, utc(2026, 3, 7, 13, 30))  # Sat 08:30 EST
    assert is_open(w, NY, utc(2026, 3, 8, 13))          # Sun 09:00 EDT: one hour earlier in UTC
    assert not is_open(w, NY, utc(2026, 3, 8, 21))      # Sun 17:00 EDT


def test_dst_change_london():
    w = window("09:00", "17:00")
    assert is_open(w, ["Europe/London"], utc(2026, 3, 28, 9))     # Sat 09:00 GMT
    assert not is_open(w, ["Europe/London"], utc(2026, 3, 29, 16, 30))  # Sun 17:30 BST
    assert is_open(w, ["Europe/London"], utc(2026, 3, 29, 8))     # Sun 09:00 BST


def test_multi_zone_number_must_be_open_in_every_zone():
    zones = zones_for(None, "+17015551234")
    w = window("09:00", "17:00")
    monday_1430 = utc(2026, 3, 9, 14, 30)        # 09:30 Central, 08:30 Mountain
    assert is_open(w, ["America/North_Dakota/Center"], monday_1430)
    assert not is_open(w, zones, monday_1430)
    assert is_open(w, zones, utc(2026, 3, 9, 15))
    assert not is_open(w, zones, utc(2026, 3, 9, 22))  # 17:00 Central, 16:00 Mountain


# --- next_open ------------------------------------------------------------------------

def test_next_open_is_now_when_open_and_utc():
    now = dt.datetime(2026, 3, 9, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
    got = next_open(window("09:00", "17:00"), NY, now)
    assert got == now and got.tzinfo == UTC
    assert next_open(None, [], utc(2026, 3, 9, 3)) == utc(2026, 3, 9, 3)


def test_next_open_without_zone_is_none():
    assert next_open(window("09:00", "17:00"), [], utc(2026, 3, 9)) is None


def test_next_open_across_days_and_the_weekend():
    w = window("09:00", "17:00", ["mon", "tue", "wed", "thu", "fri"])
    # Friday 18:00 EST -> Monday 09:00 EDT (the clocks moved forward on Sunday).
    assert next_open(w, NY, utc(2026, 3, 6, 23)) == utc(2026, 3, 9, 13)


def test_next_open_across_dst_london():
    w = window("09:00", "17:00")
    assert next_open(w, ["Europe/London"], utc(2026, 3, 28, 18)) == utc(2026, 3, 29, 8)
    assert next_open(w, ["Europe/London"], utc(2026, 10, 24, 18)) == utc(2026, 10, 25, 9)


def test_next_open_when_the_start_falls_in_the_spring_gap():
    # 02:30 does not exist in New York on 2026-03-08: the window opens when 02:00 EST jumps to 03:00 EDT.
    assert next_open(window("02:30", "04:00"), NY, utc(2026, 3, 8, 5)) == utc(2026, 3, 8, 7)


def test_next_open_in_the_repeated_autumn_hour():
    # 01:00-01:30 happens twice on 2026-11-01 in New York: 05:00Z (EDT) and 06:00Z (EST).
    w = window("01:00", "01:30")
    assert next_open(w, NY, utc(2026, 11, 1, 5, 10)) == utc(2026, 11, 1, 5, 10)
    assert next_open(w, NY, utc(2026, 11, 1, 5, 40)) == utc(2026, 11, 1, 6)


def test_next_open_multi_zone_waits_for_the_latest_zone():
    assert next_open(window("09:00", "17:00"), zones_for(None, "+17015551234"), utc(2026, 3, 9, 14)) \
        == utc(2026, 3, 9, 15)


def test_next_open_none_when_zones_never_overlap():
    # UTC+14 and UTC-11: their 09:00-10:00 hours never coincide.
    assert next_open(window("09:00", "10:00"), ["Pacific/Kiritimati", "Pacific/Pago_Pago"], utc(2026, 3, 9)) is None


def test_next_open_toll_free_number_is_open_everywhere():
    zones = zones_for(None, "+18005551234")
    got = next_open(window("09:00", "21:00"), zones, utc(2026, 3, 7, 20))
    assert got is not None and is_open(window("09:00", "21:00"), zones, got)
    assert not is_open(window("09:00", "21:00"), zones, got - dt.timedelta(seconds=1))


ZONE_SETS = [NY, ["Europe/London"], ["America/Denver", "America/North_Dakota/Center"],
             ["Australia/Adelaide", "Australia/Perth"], ["Asia/Kolkata"]]


@settings(max_examples=40, deadline=None)
@given(zones=st.sampled_from(ZONE_SETS),
       now=st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2026, 12, 31)),
       start=st.integers(0, 22 * 4), length=st.integers(1, 8 * 4),
       days=st.sets(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), min_size=1))
def test_next_open_is_the_earliest_open_instant(zones, now, start, length, days):
    start_t = dt.time(start // 4, start % 4 * 15)
    end_minutes = min(start * 15 + length * 15, 23 * 60 + 59)
    w = ContactWindow(start=start_t, end=dt.time(end_minutes // 60, end_minutes % 60), days=sorted(days))
    now = now.replace(tzinfo=UTC)
    got = next_open(w, zones, now)
    if got is not None:
        assert got >= now and is_open(w, zones, got)
        if got > now:
            assert not is_open(w, zones, got - dt.timedelta(seconds=1))
    probe = now
    while probe < (got or now + dt.timedelta(days=14)):   # nothing open earlier, on a 5-minute grid
        assert not is_open(w, zones, probe)
        probe += dt.timedelta(minutes=5)
