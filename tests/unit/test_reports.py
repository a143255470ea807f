"""core.reports: every report's range is defaulted, bounded, and shortened under load."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pom_actors.core.load import LoadConfig, Restrictions, restrictions
from pom_actors.core.reports import (DEFAULT_RANGE, LIMITED_RANGE, MAX_RANGE, RangeError, ReportLimited,
                                     abandon_rate, occupancy, resolve, retry_after)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
FREE = Restrictions()
SATURATED = restrictions(["database.connections"], LoadConfig())


def test_the_range_defaults_to_the_last_day_and_a_zoneless_time_is_utc():
    r = resolve(None, None, NOW, FREE)
    assert (r.since, r.until, r.limited) == (NOW - DEFAULT_RANGE, NOW, False)
    r = resolve(datetime(2026, 11, 1), datetime(2026, 11, 2), NOW, FREE)
    assert r.since.tzinfo is timezone.utc and r.until - r.since == timedelta(days=1)
    assert resolve(None, NOW - timedelta(days=3), NOW, FREE).since == NOW - timedelta(days=3) - DEFAULT_RANGE


@pytest.mark.parametrize("since, until, field", [
    (NOW, NOW, "since"),                                   # empty
    (NOW, NOW - timedelta(seconds=1), "since"),            # backwards
    (NOW - MAX_RANGE - timedelta(seconds=1), NOW, "since"),  # over 31 days
    (None, datetime.min.replace(tzinfo=timezone.utc), "until"),   # the default would overflow
])
def test_a_range_out_of_bounds_names_its_field(since, until, field):
    with pytest.raises(RangeError) as err:
        resolve(since, until, NOW, FREE)
    assert err.value.field == field
    assert resolve(NOW - MAX_RANGE, NOW, NOW, FREE).since == NOW - MAX_RANGE      # the bound itself is fine


def test_under_load_the_default_is_short_and_a_long_range_waits_with_retry_after():
    assert not SATURATED.allows("report")
    r = resolve(None, None, NOW, SATURATED)
    assert (r.until - r.since, r.limited) == (LIMITED_RANGE, True)
    assert resolve(NOW - LIMITED_RANGE, NOW, NOW, SATURATED).limited
    config = LoadConfig.build({"sample_s": 5})
    with pytest.raises(ReportLimited) as err:
        resolve(NOW - timedelta(hours=2), NOW, NOW, SATURATED, config)
    # database.connections clears after 2 samples of 5 s
    assert (err.value.retry_after_s, err.value.because, err.value.max_range_s) == (10, ["database.connections"], 3600)
    assert "7200 s asked" in str(err.value)


def test_retry_after_takes_the_slowest_alarm_to_clear():
    config = LoadConfig.build({"sample_s": 2, "thresholds": {"database.blocked": {"samples": 7}}})
    assert retry_after(["database.connections", "database.blocked"], config) == 14
    assert retry_after([], config) == 2


def test_the_abandon_rate_is_over_live_answers():
    assert abandon_rate({"answered": 97, "abandoned": 3}) == 0.03
    assert abandon_rate({"answered": 0, "abandoned": 0}) is None
    assert abandon_rate({"abandoned": 2}) == 1.0


def test_occupancy_is_time_on_call_over_logged_in_time_and_none_before_any_agent_worked():
    assert occupancy({"on_call": 45.0, "logged_in": 60.0}) == 0.75
    assert occupancy({"on_call": 0.0, "logged_in": 0.0}) is None
