"""Online estimators a predictive pacer learns from: hit rate, answer times, talk and wrap times.

Each estimator starts from a prior (so a pacer behaves sanely at shift start with no history),
moves to the data as it arrives, and turns what it knows into small lookup tables indexed by
age, because a pacer is asked every tick and must answer in microseconds.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np


class HitRateEstimator:
    """Share of dials answered live, by dial time, tracking change quickly.

    Results are credited to the second the dial was placed and folded into the averages only
    once every dial of that second has resolved (`settle_s` later). Averaging in order of
    arrival instead would be biased after every burst of dials: live answers come back in
    seconds, no-answers only at the ring timeout, so the estimate would first jump and then
    sag — and a sagging estimate makes a pacer over-dial.

    The estimate is a running mean over the dials since the last change, its memory growing
    up to `slow_dials` (then an exponentially weighted mean). A fast exponentially weighted
    mean (memory `fast_dials`) watches it: when the fast mean leaves the slow one's confidence
    band by `z` standard deviations, the rate has changed (a new list, a mid-shift drop) and
    the slow mean restarts from the fast one, weighted as the `fast_dials` it summarises, so a
    change is followed within a few hundred dials without adopting the fast mean's noise.
    """

    def __init__(self, prior: float, prior_weight: float, fast_dials: float, slow_dials: float,
                 settle_s: float, z: float = 4.0):
        self._a_fast = 1.0 / fast_dials
        self._fast_n = fast_dials
        self._slow_max = slow_dials
        self._fast = self._slow = prior
        self._slow_n = max(prior_weight, 1.0)   # dials behind the slow mean since the last change
        self._z = z
        self._settle = settle_s
        self._pending: dict[int, list[int]] = {}   # dial second -> [live, resolved]

    def add(self, live: bool, dialled_at: float, count: int = 1) -> None:
        cell = self._pending.setdefault(int(dialled_at), [0, 0])
        if live:
            cell[0] += count
        cell[1] += count

    def settle(self, now: float) -> None:
        """Fold the seconds whose dials have all resolved, oldest first."""
        if not self._pending:
            return
        horizon = now - self._settle
        for second in sorted(k for k in self._pending if k < horizon):
            live, total = self._pending.pop(second)
            x = live / total
            # n updates with the same mean x, in closed form: m += (1 - (1 - a)^n)(x - m).
            self._fast += (1.0 - (1.0 - self._a_fast) ** total) * (x - self._fast)
            self._slow_n = min(self._slow_max, self._slow_n + total)
            self._slow += total / self._slow_n * (x - self._slow) if self._slow_n < self._slow_max \
                else (1.0 - (1.0 - 1.0 / self._slow_max) ** total) * (x - self._slow)
            p = self._slow
            band = self._z * math.sqrt(max(p * (1 - p), 1e-4) * self._a_fast / 2)
            if abs(self._fast - p) > band:
                self._slow, self._slow_n = self._fast, self._fast_n

    @property
    def value(self) -> float:
        """The estimate to act on now."""
        return self._slow


class DurationModel:
    """A duration distribution learnt from the latest `window` samples, exponential prior first.

    `finish_tables(horizons, lag)` gives, for an activity that has lasted `age` seconds (binned by
    `bin_s`), the probability that it and a following lag (e.g. wrap-up after talk, given as
    another model) are both over within `h` seconds.
    """

    def __init__(self, prior_mean: float, window: int = 400, min_samples: int = 30,
                 bin_s: float = 2.0, max_age: float = 3600.0):
        self.prior_mean = prior_mean
        self._xs: deque[float] = deque(maxlen=window)
        self._sorted: np.ndarray | None = None
        self._min = min_samples
        self.bin_s = bin_s
        self._ages = np.arange(0.0, max_age + bin_s, bin_s)

    def add(self, x: float) -> None:
        self._xs.append(max(0.0, x))
        self._sorted = None

    @property
    def learnt(self) -> bool:
        return len(self._xs) >= self._min

    @property
    def mean(self) -> float:
        return float(np.mean(self._xs)) if self.learnt else self.prior_mean

    def cdf(self, x: np.ndarray) -> np.ndarray:
        if not self.learnt:
            return 1.0 - np.exp(-np.maximum(x, 0.0) / self.prior_mean)
        if self._sorted is None:
            self._sorted = np.sort(np.fromiter(self._xs, float))
        xs = self._sorted
        # Empirical cdf with an exponential tail past the largest sample so old activities
        # keep a finite, honest hazard instead of 0/0.
        f = np.searchsorted(xs, x, side="right") / (len(xs) + 1.0)
        top = xs[-1]
        k = max(3, len(xs) // 10)
        tail_mean = max(1.0, float(np.mean(xs[-k:]) - xs[-k]))
        over = x > top
        f_top = len(xs) / (len(xs) + 1.0)
        f = np.where(over, 1.0 - (1.0 - f_top) * np.exp(-(x - top) / tail_mean), f)
        return f

    def finish_tables(self, horizons: tuple[float, ...], lag: "DurationModel | None" = None) -> np.ndarray:
        """Rows per horizon h, columns per age bin: P(over within h | lasted `age`), the lag
        (if given, e.g. wrap-up after talk) included by summing over its distribution."""
        a = self._ages
        f_a = self.cdf(a)
        surv = np.maximum(1.0 - f_a, 1e-9)
        if lag is None:
            p = (self.cdf(a[None, :] + np.asarray(horizons)[:, None]) - f_a) / surv
            return np.clip(p, 0.0, 1.0)
        # P(remaining + lag <= h) = sum over lag bins of P(lag in bin)·P(remaining <= h - lag).
        offsets, weights, rows = [], [], []
        for row, h in enumerate(horizons):
            steps = max(1, int(h / self.bin_s))
            edges = np.linspace(0.0, h, steps + 1)
            offsets.append(h - 0.5 * (edges[:-1] + edges[1:]))
            weights.append(np.diff(lag.cdf(edges)))
            rows.append(np.full(steps, row))
        off = np.concatenate(offsets)
        w = np.concatenate(weights)
        terms = w[:, None] * (self.cdf(a[None, :] + off[:, None]) - f_a) / surv
        p = np.zeros((len(horizons), len(a)))
        np.add.at(p, np.concatenate(rows), terms)
        return np.clip(p, 0.0, 1.0)


class AnswerModel:
    """When dials resolve, and how likely an unresolved dial of a given age is a live answer
    still to come within a horizon.

    Live answer times and other resolution times (busy, machine, no answer…) are learnt
    separately; with the hit rate `p` they give, per age bin of 1 s,
    q(age) = P(live answer in (age, age+h] | unresolved at age), the demand a ringing call
    puts on agents in the next `h` seconds. No one answers after the ring timeout (the call
    is released then), so q is 0 from there on: a call still unresolved past it (a machine
    being detected, an outcome not yet collected) is no demand, whatever the learnt
    distributions' tails, whose ratio is noise out there.
    """

    def __init__(self, prior_answer_s: float, ring_timeout: float, window: int = 600,
                 live: DurationModel | None = None, other: DurationModel | None = None):
        self._live = live or DurationModel(prior_answer_s, window=window, min_samples=20,
                                           bin_s=1.0, max_age=ring_timeout)
        self._other = other or DurationModel(ring_timeout * 0.6, window=window, min_samples=20,
                                             bin_s=1.0, max_age=ring_timeout)
        self.ring_timeout = ring_timeout
        self.max_age = ring_timeout + 15.0

    def add_live(self, seconds: float) -> None:
        self._live.add(seconds)

    def add_other(self, seconds: float) -> None:
        self._other.add(seconds)

    @property
    def mean_answer(self) -> float:
        return self._live.mean

    def demand_tables(self, p: float, horizons: tuple[float, ...]) -> np.ndarray:
        """Rows per horizon, columns per age second: q(age) as described above."""
        ages = np.arange(0.0, self.max_age + 1.0, 1.0)
        lc = self._live_cdf(ages)
        oc = self._other.cdf(ages)
        unresolved = np.maximum(p * (1 - lc) + (1 - p) * (1 - oc), 1e-9)
        q = p * (self._live_cdf(ages[None, :] + np.asarray(horizons)[:, None]) - lc) / unresolved
        return np.clip(q, 0.0, 1.0)

    def _live_cdf(self, x: np.ndarray) -> np.ndarray:
        """The learnt answer-time cdf, 1 at the ring timeout: no live answer comes later."""
        return np.where(x >= self.ring_timeout, 1.0, self._live.cdf(x))
