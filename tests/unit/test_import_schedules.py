"""The director's import-schedule duty: a due time starts one import, once, whichever tick or
director gets there; missed times coalesce; a clock behind the database counts from its now;
a bad schedule or a failing one never stops the others."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pom_actors.core.clock import ManualClock
from pom_actors.services.import_schedules import ImportScheduleDuty

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc)


class ScheduleTable:
    """`import_schedules` in memory, with `start_due`'s compare-and-set on last_run_at."""

    broken = False

    def __init__(self, *rows):
        self.rows = {r["id"]: {"last_run_at": None, "created_at": T0 - timedelta(days=1), "list_id": 1,
                               "name": f"s{r['id']}", **r} for r in rows}
        self.imports: list[tuple[int, datetime]] = []

    def schedules(self):
        return [dict(r) for r in self.rows.values()]

    def start_due(self, schedule, run_at):
        row = self.rows[schedule["id"]]
        if row.get("fails"):
            raise LookupError("contact list 1 does not exist")
        if row["last_run_at"] != schedule["last_run_at"]:
            return None
        row["last_run_at"] = run_at
        self.imports.append((row["id"], run_at))
        return len(self.imports)

    def mark_served(self, schedule_id, at, read):
        if self.rows[schedule_id]["last_run_at"] == read:
            self.rows[schedule_id]["last_run_at"] = at


def duty(table, at):
    return ImportScheduleDuty(open_store=lambda: table, clock=ManualClock(at))


DAILY_3 = {"cron": "0 3 * * *", "timezone": "UTC", "enabled": True}


def test_a_due_time_runs_once_across_ticks_and_a_restarted_director():
    table = ScheduleTable({"id": 1, "schedule": DAILY_3})
    first = duty(table, T0 + timedelta(hours=1, seconds=30))            # 03:00:30
    assert first.tick() == [1]
    assert first.tick() == []
    assert duty(table, T0 + timedelta(hours=1, minutes=5)).tick() == []  # a restarted director
    assert table.imports == [(1, T0 + timedelta(hours=1))]
    assert duty(table, T0 + timedelta(days=1, hours=1)).tick() == [2]    # the next day's
    assert table.imports[-1] == (1, T0 + timedelta(days=1, hours=1))


def test_two_directors_reading_the_same_row_start_one_import():
    table = ScheduleTable({"id": 1, "schedule": DAILY_3})
    stale = table.schedules()[0]
    at = T0 + timedelta(hours=1)
    assert duty(table, at).tick() == [1]
    assert table.start_due(stale, at) is None                   # the other one's claim comes second
    assert len(table.imports) == 1


def test_missed_times_coalesce_and_times_before_creation_never_run():
    table = ScheduleTable({"id": 1, "schedule": DAILY_3, "last_run_at": T0 - timedelta(days=3)},
                          {"id": 2, "schedule": DAILY_3, "created_at": T0 + timedelta(hours=1, minutes=1)})
    assert duty(table, T0 + timedelta(hours=2)).tick() == [1]
    assert table.imports == [(1, T0 + timedelta(hours=1))]                 # one run for three days


def test_a_clock_behind_the_database_counts_from_its_now_and_never_moves_back():
    table = ScheduleTable({"id": 1, "schedule": DAILY_3, "created_at": T0 + timedelta(days=30)},
                          {"id": 2, "schedule": DAILY_3, "last_run_at": T0 + timedelta(days=30)})
    now = T0 - timedelta(hours=3)                                        # 23:00 the day before
    assert duty(table, now).tick() == []
    assert table.rows[1]["last_run_at"] == now
    assert table.rows[2]["last_run_at"] == T0 + timedelta(days=30)       # served beyond now: kept
    assert duty(table, T0 + timedelta(hours=1)).tick() == [1]            # 03:00 after that now


@pytest.mark.parametrize("bad", [
    {"id": 1, "schedule": {"cron": "* * *", "timezone": "UTC"}},
    {"id": 1, "schedule": {"cron": "0 3 * * *", "timezone": "Mars/Olympus"}},
    {"id": 1, "schedule": DAILY_3, "fails": True},
])
def test_a_bad_or_failing_schedule_does_not_stop_the_others(bad):
    table = ScheduleTable(bad, {"id": 2, "schedule": DAILY_3})
    assert duty(table, T0 + timedelta(hours=1)).tick() == [1]
    assert table.imports == [(2, T0 + timedelta(hours=1))]


def test_a_disabled_schedule_does_not_run():
    table = ScheduleTable({"id": 1, "schedule": {**DAILY_3, "enabled": False}})
    assert duty(table, T0 + timedelta(hours=1)).tick() == []
