"""A fixed-bucket histogram an actor keeps in memory and reports in its `status()`: cumulative
counts per bucket since the actor (re)started, so the gateway's `/metrics` exports it as a real
Prometheus histogram (`_bucket`, `_sum`, `_count`) without sampling anything per scrape.

Observing is one bisect and two additions (a batch of `n` equal observations at once), so it
can sit on a hot path."""
from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

# Seconds: from a millisecond to a minute (dispatch and answered-to-agent latencies).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class Histogram:
    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS):
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("bucket bounds must be increasing and not empty")
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)      # the last: above every bound (+Inf only)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, n: int = 1) -> None:
        """`n` observations of `value` (n <= 0: nothing)."""
        if n <= 0:
            return
        self.counts[bisect_left(self.bounds, value)] += n
        self.sum += value * n
        self.count += n

    def as_dict(self) -> dict[str, Any]:
        """`{"le": bounds, "buckets": cumulative counts per bound, "sum", "count"}` (plain data,
        what `status()` carries over Ray); `count` is the +Inf bucket."""
        cumulative, running = [], 0
        for c in self.counts[:-1]:
            running += c
            cumulative.append(running)
        return {"le": list(self.bounds), "buckets": cumulative, "sum": round(self.sum, 6), "count": self.count}
