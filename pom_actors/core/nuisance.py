"""Attempt history per address across all campaigns, for the nuisance-frequency rule.

The rule ("at most N attempts to one address in a rolling period") spans every campaign, so no
single manager can enforce it; the RuleEngine holds this tracker, rebuilt from the `attempts`
table at start and fed by every allowed verdict. It sits on the hot path of every batch, so it
keeps plain float timestamps in a sorted deque per address and prunes as it goes.
"""
from __future__ import annotations

from bisect import bisect_right, insort
from collections import deque
from datetime import datetime

# A full sweep runs after this many records at least, and otherwise once the records since the
# last sweep reach the number of addresses it left: its cost is then paid for by those records.
_MIN_SWEEP_INTERVAL = 4096


def _seconds(at: datetime) -> float:
    if at.tzinfo is None:
        raise ValueError(f"nuisance times must be timezone-aware, got naive {at!r}")
    return at.timestamp()


class NuisanceTracker:
    """Sliding window of attempt times per address.

    `horizon_s` is the longest period any nuisance rule looks back; entries older than the
    newest recorded time minus the horizon are dropped automatically.
    """

    def __init__(self, horizon_s: float = 86400):
        if horizon_s <= 0:
            raise ValueError(f"horizon_s must be > 0, got {horizon_s}")
        self.horizon_s = float(horizon_s)
        self._times: dict[str, deque[float]] = {}
        self._latest = float("-inf")
        self._since_sweep = 0
        self._swept_size = 0

    def record(self, address: str, at: datetime) -> None:
        """Note one attempt to `address` at `at` (any order; rebuilds may come unsorted)."""
        t = _seconds(at)
        times = self._times.get(address)
        if times is None:
            times = self._times[address] = deque()
        if not times or t >= times[-1]:
            times.append(t)
        else:
            insort(times, t)
        if t > self._latest:
            self._latest = t
        cutoff = self._latest - self.horizon_s
        while times and times[0] < cutoff:
            times.popleft()
        if not times:
            del self._times[address]
        self._since_sweep += 1
        if self._since_sweep >= max(_MIN_SWEEP_INTERVAL, self._swept_size):
            self._sweep(cutoff)

    def count(self, address: str, since: datetime) -> int:
        """Attempts to `address` strictly after `since` (a period is (now - period, now])."""
        times = self._times.get(address)
        if not times:
            return 0
        return len(times) - bisect_right(times, _seconds(since))

    def prune(self, before: datetime) -> None:
        """Drop every entry older than `before` and forget addresses left without one."""
        self._sweep(_seconds(before))

    def _sweep(self, cutoff: float) -> None:
        empty = []
        for address, times in self._times.items():
            while times and times[0] < cutoff:
                times.popleft()
            if not times:
                empty.append(address)
        for address in empty:
            del self._times[address]
        self._since_sweep = 0
        self._swept_size = len(self._times)

    def __len__(self) -> int:
        return len(self._times)
