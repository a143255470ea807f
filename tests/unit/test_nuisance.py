from datetime import datetime, timedelta, timezone

import pytest

from pom_actors.core.nuisance import NuisanceTracker

T0 = datetime(2026, 1, 14, 12, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_count_is_strictly_after_since():
    tracker = NuisanceTracker()
    for s in (0, 10, 20):
        tracker.record("a", at(s))
    assert tracker.count("a", at(-1)) == 3
    assert tracker.count("a", at(0)) == 2
    assert tracker.count("a", at(19)) == 1
    assert tracker.count("a", at(20)) == 0
    assert tracker.count("unknown", at(-1)) == 0
    assert len(tracker) == 1          # counting an unknown address does not track it


def test_out_of_order_records_are_kept_sorted():
    tracker = NuisanceTracker()
    for s in (30, 10, 20, 0):
        tracker.record("a", at(s))
    assert [tracker.count("a", at(s)) for s in (-1, 5, 15, 25)] == [4, 3, 2, 1]


def test_record_drops_entries_beyond_horizon():
    tracker = NuisanceTracker(horizon_s=100)
    tracker.record("a", at(0))
    tracker.record("a", at(50))
    tracker.record("a", at(151))      # at(0) and at(50) are now older than the horizon
    assert tracker.count("a", at(-1000)) == 1
    tracker.record("b", at(0))        # older than newest - horizon: kept out
    assert tracker.count("b", at(-1000)) == 0
    assert len(tracker) == 1


def test_prune_forgets_old_addresses():
    tracker = NuisanceTracker()
    tracker.record("old", at(0))
    tracker.record("mixed", at(0))
    tracker.record("mixed", at(100))
    tracker.prune(at(50))
    assert len(tracker) == 1
    assert tracker.count("mixed", at(-1)) == 1
    assert tracker.count("old", at(-1)) == 0


def test_memory_stays_bounded_without_explicit_prune():
    tracker = NuisanceTracker(horizon_s=60)
    for i in range(20_000):
        tracker.record(f"+1555{i:07d}", at(i))
    # amortised sweeps keep only recent addresses (at most a sweep interval beyond the horizon)
    assert len(tracker) <= 4096 + 60
    assert tracker.count("+15550019999", at(0)) == 1


def test_many_addresses():
    tracker = NuisanceTracker()
    addresses = [f"+4420{i:08d}" for i in range(100_000)]
    for i, a in enumerate(addresses):
        tracker.record(a, at(i % 3600))
    assert len(tracker) == 100_000
    assert sum(tracker.count(a, at(-1)) for a in addresses[:1000]) == 1000


def test_naive_times_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        NuisanceTracker().record("a", datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        NuisanceTracker(horizon_s=0)
