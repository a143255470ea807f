import re
from datetime import datetime, timedelta, timezone

import pydantic
import pytest

from pom_actors.core.schedule import Schedule, due_runs, next_run, parsed

UTC = timezone.utc


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_next_run_in_utc_is_strictly_after():
    s = Schedule(cron="0 9 * * *")
    assert next_run(s, utc(2026, 1, 14, 8, 59)) == utc(2026, 1, 14, 9, 0)
    assert next_run(s, utc(2026, 1, 14, 9, 0)) == utc(2026, 1, 15, 9, 0)
    assert next_run(s, utc(2026, 1, 14, 9, 0)).tzinfo == UTC


def test_next_run_keeps_local_time_across_spring_forward():
    # New York moves from EST (-5) to EDT (-4) on 2026-03-08
    s = Schedule(cron="0 9 * * *", timezone="America/New_York")
    first = next_run(s, utc(2026, 3, 7, 0, 0))
    second = next_run(s, first)
    assert first == utc(2026, 3, 7, 14, 0)
    assert second == utc(2026, 3, 8, 13, 0)
    assert second - first == timedelta(hours=23)


def test_next_run_keeps_local_time_across_fall_back():
    s = Schedule(cron="0 9 * * *", timezone="Europe/Berlin")   # CEST -> CET on 2026-10-25
    assert next_run(s, utc(2026, 10, 24, 12)) == utc(2026, 10, 25, 8, 0)
    assert next_run(s, utc(2026, 10, 23, 12)) == utc(2026, 10, 24, 7, 0)


def test_skipped_wall_time_runs_when_the_gap_ends():
    s = Schedule(cron="30 2 * * *", timezone="America/New_York")
    # 02:30 does not exist on 2026-03-08: it runs at 03:00 EDT (07:00 UTC), once
    run = next_run(s, utc(2026, 3, 7, 12))
    assert run == utc(2026, 3, 8, 7, 0)
    assert next_run(s, run) == utc(2026, 3, 9, 6, 30)


def test_repeated_wall_time_runs_once():
    s = Schedule(cron="30 1 * * *", timezone="America/New_York")
    # 01:30 happens twice on 2026-11-01: only the first (EDT, 05:30 UTC) runs
    run = next_run(s, utc(2026, 10, 31, 12))
    assert run == utc(2026, 11, 1, 5, 30)
    assert next_run(s, run) == utc(2026, 11, 2, 6, 30)


def test_every_half_hour_through_spring_forward_has_no_duplicates():
    s = Schedule(cron="*/30 * * * *", timezone="America/New_York")
    runs, at = [], utc(2026, 3, 8, 6, 0)      # 01:00 EST
    for _ in range(4):
        at = next_run(s, at)
        runs.append(at)
    assert runs == [utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 7, 30),
                    utc(2026, 3, 8, 8, 0)]


def test_due_runs_coalesces_missed_runs():
    s = Schedule(cron="0 * * * *")
    assert due_runs(s, utc(2026, 1, 14, 9, 0), utc(2026, 1, 14, 12, 30)) == utc(2026, 1, 14, 12, 0)
    assert due_runs(s, utc(2026, 1, 14, 12, 0), utc(2026, 1, 14, 12, 30)) is None
    assert due_runs(s, utc(2026, 1, 14, 11, 0), utc(2026, 1, 14, 12, 0)) == utc(2026, 1, 14, 12, 0)
    assert due_runs(s, None, utc(2026, 1, 14, 12, 30)) == utc(2026, 1, 14, 12, 0)


def test_due_runs_in_local_zone_and_repeated_hour():
    s = Schedule(cron="45 1 * * *", timezone="America/New_York")
    # at 01:10 EST (second 01:xx, 06:10 UTC) the day's 01:45 already ran at 05:45 UTC
    assert due_runs(s, None, utc(2026, 11, 1, 6, 10)) == utc(2026, 11, 1, 5, 45)
    assert due_runs(s, utc(2026, 11, 1, 5, 45), utc(2026, 11, 1, 6, 50)) is None


def test_disabled_schedule_is_never_due():
    s = Schedule(cron="* * * * *", enabled=False)
    assert due_runs(s, None, utc(2026, 1, 14, 12)) is None


@pytest.mark.parametrize("kwargs, fault", [
    ({"cron": "61 * * * *"}, "beyond 59"),
    ({"cron": "0 9 31 feb-x *"}, "not a valid cron"),
    ({"cron": "0 0 30 2 *"}, "never fires"),
    ({"cron": "0 9 * * * *"}, "5 fields"),
    ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "unknown time zone"),
])
def test_bad_schedules_refused(kwargs, fault):
    with pytest.raises(pydantic.ValidationError, match=fault):
        Schedule(**kwargs)


def test_macros_and_naive_times():
    assert next_run(Schedule(cron="@daily"), utc(2026, 1, 14, 12)) == utc(2026, 1, 15)
    with pytest.raises(ValueError):
        next_run(Schedule(cron="@daily"), datetime(2026, 1, 14))


# -- hostile expressions: bounded before croniter parses them --------------------------------------
@pytest.mark.parametrize("cron, fault", [
    ("0 " * 300_000 + "*", "at most 200 characters"),                     # the 600 KB expression
    ("*/99999999999999999999 * * * *", "minute field: step 99999999999999999999 must be between 1 and 59"),
    ("*/60 * * * *", "step 60 must be between 1 and 59"),
    ("0 */0 * * *", "hour field: step 0"),
    ("0 0 1/32 * *", "day of month field: step 32"),
    (",".join(str(i % 60) for i in range(61)) + " * * * *", "61 items (at most 60)"),
    ("0 9 * * 99999999999999999999", "day of week field: '99999999999999999999' is beyond 7"),
    ("0 9 * 1-13 *", "month field: '1-13' is beyond 12"),
    ("0 9 * * $", "is not a value, a range or a step"),
    ("@reboot", "unknown macro"),
])
def test_hostile_crons_are_refused_naming_the_field(cron, fault):
    with pytest.raises(pydantic.ValidationError, match=re.escape(fault)):
        Schedule(cron=cron)


@pytest.mark.parametrize("cron", ["0 9 * * mon-fri", "0-59/5 8-17 * * 1-5", "0 0 1,15 * *", "0 9 L * *",
                                  "0 9 * * 1#2", "0 0 1W * *", "0 9 ? * *", "*/59 */23 */31 */12 */7",
                                  "@hourly", ",".join(str(i) for i in range(60)) + " * * * *"])
def test_crons_within_bounds_are_taken(cron):
    assert Schedule(cron=cron).cron == cron


def test_the_directors_tick_parses_each_schedule_once():
    document = {"cron": "*/5 * * * *", "timezone": "Europe/Berlin", "enabled": True}
    first = parsed(document)
    assert parsed(dict(document)) is first and first == Schedule(**document)
    assert parsed({**document, "cron": "*/10 * * * *"}) is not first
    with pytest.raises(pydantic.ValidationError):
        parsed({**document, "cron": {"nested": "dict"}})      # unhashable: refused, not a TypeError
