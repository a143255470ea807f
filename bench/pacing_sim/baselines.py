"""The policies ours is compared with: VICIdial's adaptive dial level, a PI controller, the oracle.

VICIdial (re-implemented from docs/PREDICTIVE.txt and the behaviour of bin/AST_VDadapt.pl and
AST_VDauto_dial.pl, written anew): a dial level L (lines per active agent) is applied every
tick as `round(L × (talking + ready agents)) − active lines`, active lines being calls
dialling, ringing, waiting or talking (agents in wrap-up are paused in VICIdial's sense). Every
tick it samples ready agents, waiting calls and agents (VICIdial samples every second; the
simulation's tick is 2 s, so its 15 samples span 30 s); every 15 s it takes the 15-sample
averages, differential = ready − waiting (+ the
dl_diff_target), ratio = differential / average agents, scales it by the intensity modifier
(up-moves × (1 + i/100), down-moves × |i/100 − 1|), sets L ← L × (1 + scaled ratio), clamps
to [1, max level], then applies the drop cut-offs: more than 20 calls in the last minute with
over 50 % of them dropped halves L; more than 50 calls today with drops over the limit as a
share of today's answers sets L to 1 (HARD_LIMIT), halves it (AVERAGE), or multiplies it by
the tapered rate (hours left to the latest calling time, HHMM difference / 1000, capped at 1,
or L = 1 once past that time) (TAPERED); L never goes below 1.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Literal

import numpy as np

from pom_actors.core.pacing.base import Pacer
from pom_actors.core.pacing.estimators import AnswerModel, DurationModel
from pom_actors.core.pacing.predictive import PredictiveConfig, PredictivePacer
from pom_actors.core.pacing.sim import SHIFT_START, CallCentre
from pom_actors.core.pacing.snapshot import (DIAL_RESULTS, EventKind, PacerSnapshot,
                                             PacingDecision, RuleCounters, capped)


class VicidialAdaptPacer(Pacer):
    """One campaign's adaptive dial level, as described in the module docstring. Parameters
    carry VICIdial's names: adaptive_dropped_percentage, adaptive_maximum_level,
    adaptive_intensity, adaptive_dl_diff_target, auto_dial_level, adaptive_latest_server_time."""

    def __init__(self, method: Literal["ADAPT_HARD_LIMIT", "ADAPT_TAPERED", "ADAPT_AVERAGE"],
                 drop_limit_pct: float = 3.0, max_level: float = 3.0, intensity: float = 0.0,
                 dl_diff_target: float = 0.0, start_level: float = 1.0,
                 latest_hhmm: int = 1700):
        self.method = method
        self.drop_limit = drop_limit_pct
        self.max_level = max_level
        self.intensity = intensity
        self.dl_diff_target = dl_diff_target
        self.level = start_level
        self.latest_hhmm = latest_hhmm
        self._samples: deque[tuple[int, int, int]] = deque(maxlen=15)
        self._minute: deque[tuple[float, int, int]] = deque()   # (t, calls, drops) per tick
        self._calls_today = 0
        self._last_update = None

    def decide(self, snapshot: PacerSnapshot) -> PacingDecision:
        t = snapshot.now.timestamp()
        calls = sum(1 for e in snapshot.events if e.kind in DIAL_RESULTS)
        drops = sum(1 for e in snapshot.events if e.kind is EventKind.ABANDONED)
        self._calls_today += calls
        self._minute.append((t, calls, drops))
        while self._minute and self._minute[0][0] <= t - 60:
            self._minute.popleft()
        ready, waiting = len(snapshot.ready), len(snapshot.waiting)
        agents = snapshot.staffed
        self._samples.append((ready, waiting, agents))
        if self._last_update is None:
            self._last_update = t
        elif t - self._last_update >= 15:
            self._last_update = t
            self._adapt(snapshot)
        active_agents = ready + len(snapshot.talking)
        goal = round(self.level * active_agents)
        lines = snapshot.in_flight + len(snapshot.talking)
        return PacingDecision(capped(goal - lines, snapshot), f"level {self.level:.3f}")

    def _adapt(self, snapshot: PacerSnapshot) -> None:
        n = len(self._samples)
        ready_avg = sum(s[0] for s in self._samples) / n
        waiting_avg = sum(s[1] for s in self._samples) / n
        agents_avg = sum(s[2] for s in self._samples) / n
        diff = ready_avg - waiting_avg + self.dl_diff_target
        ratio = diff / agents_avg if diff != 0 and agents_avg != 0 else 0.0
        i = self.intensity / 100.0
        scaled = ratio * (abs(i - 1) if ratio < 0 else (i + 1))
        level = min(self.max_level, max(1.0, self.level * (1 + scaled)))
        m_calls = sum(c for _, c, _ in self._minute)
        m_drops = sum(d for _, _, d in self._minute)
        if m_calls > 20 and 100.0 * m_drops / m_calls > 50:
            level /= 2
        c: RuleCounters = snapshot.counters
        today_pct = 100.0 * c.abandoned / c.live_answered if c.live_answered else 0.0
        if self._calls_today > 50 and today_pct > self.drop_limit:
            if self.method == "ADAPT_HARD_LIMIT":
                level = 1.0
            elif self.method == "ADAPT_AVERAGE":
                level /= 2
            else:
                local = snapshot.now
                hours_left = self.latest_hhmm - (local.hour * 100 + local.minute)
                level = 1.0 if hours_left < 0 else level * min(1.0, hours_left / 1000.0)
        self.level = max(1.0, level)


class PIPacer(Pacer):
    """A PI controller on a VICIdial-style dial level (lines per active agent), updated every
    15 s from the error between `setpoint` and the abandon rate of the last `memory_s`
    (decayed counts, with 20 answers at the setpoint as a prior), with anti-windup."""

    def __init__(self, setpoint: float = 0.028, kp: float = 1.0, ki: float = 0.3,
                 max_level: float = 12.0, memory_s: float = 900.0):
        self.setpoint = setpoint
        self.kp, self.ki = kp, ki
        self.max_level = max_level
        self.memory_s = memory_s
        self.level = 1.0
        self._integral = 0.0
        self._last: float | None = None
        self._seen = (0, 0)
        self._ans = self._ab = 0.0

    def decide(self, snapshot: PacerSnapshot) -> PacingDecision:
        t = snapshot.now.timestamp()
        if self._last is None:
            self._last = t
        elif t - self._last >= 15:
            c = snapshot.counters
            decay = math.exp(-(t - self._last) / self.memory_s)
            self._ans = self._ans * decay + c.live_answered - self._seen[0]
            self._ab = self._ab * decay + c.abandoned - self._seen[1]
            self._seen = (c.live_answered, c.abandoned)
            rate = (self._ab + self.setpoint * 20) / (self._ans + 20)
            err = (self.setpoint - rate) / self.setpoint
            self._integral = min(40.0, max(-10.0, self._integral + err * (t - self._last) / 60))
            self._last = t
            self.level = min(self.max_level, max(1.0, 1.0 + self.kp * err + self.ki * self._integral))
        goal = round(self.level * (len(snapshot.ready) + len(snapshot.talking)))
        lines = snapshot.in_flight + len(snapshot.talking)
        return PacingDecision(capped(goal - lines, snapshot), f"level {self.level:.3f}")


class _Known(DurationModel):
    """A duration model that already knows the truth: seeded with many draws, never updated."""

    def __init__(self, draws: np.ndarray, bin_s: float = 2.0, max_age: float = 3600.0):
        super().__init__(float(np.mean(draws)), window=len(draws), min_samples=1, bin_s=bin_s,
                         max_age=max_age)
        for x in draws:
            super().add(float(x))

    def add(self, x: float) -> None:
        """Truth does not change with observations."""


class OraclePacer(PredictivePacer):
    """The same state-dependent rule as ours (calls in flight as a function of ready, talking and
    wrapping agents and of the ages of ringing calls) but with the true parameters: the exact
    live-answer rate at every moment (including the mid-shift drop) and the true talk, wrap and
    answer-time distributions, and a fixed loss share α instead of feedback — the best of which
    is found by sweeping α, as an upper bound for any online pacer of this state."""

    def __init__(self, centre: CallCentre, alpha: float, seed: int = 7):
        super().__init__(PredictiveConfig(ring_timeout_s=centre.ring_timeout,
                                          connect_limit_s=centre.connect_limit_s, refresh_s=1e9))
        c = centre
        rng = np.random.default_rng(seed)
        n = 20000
        if c.talk_dist == "exponential":
            talk = rng.exponential(c.talk_mean, n)
        else:
            talk = rng.lognormal(math.log(c.talk_mean) - 0.5 * c.talk_sigma ** 2, c.talk_sigma, n)
        if c.wrap_dist == "exponential":
            wrap = rng.exponential(c.wrap_mean, n)
        else:
            wrap = rng.lognormal(math.log(c.wrap_mean) - 0.5 * c.wrap_sigma ** 2, c.wrap_sigma, n)
        s2 = math.log(1 + (c.ring_sd / c.ring_mean) ** 2)
        ring = rng.lognormal(math.log(c.ring_mean) - 0.5 * s2, math.sqrt(s2), n)
        ring = ring[ring <= c.ring_timeout]
        self.talk = _Known(talk)
        self.wrap = _Known(wrap)
        self.answers = AnswerModel(c.ring_mean, c.ring_timeout,
                                   live=_Known(ring, bin_s=1.0, max_age=c.ring_timeout),
                                   other=_Known(self._other_times(c, rng, n), bin_s=1.0, max_age=c.ring_timeout))
        self.centre = c
        self.alpha = alpha

    @staticmethod
    def _other_times(c: CallCentre, rng: np.random.Generator, n: int) -> np.ndarray:
        kinds = rng.random(n)
        ring = rng.lognormal(math.log(c.ring_mean) - 0.5 * math.log(1 + (c.ring_sd / c.ring_mean) ** 2),
                             math.sqrt(math.log(1 + (c.ring_sd / c.ring_mean) ** 2)), n)
        m = c.machine_share
        out = np.where(kinds < m, np.minimum(ring + rng.exponential(c.amd_delay_mean, n), c.ring_timeout + 15),
              np.where(kinds < m + c.busy_share, c.busy_s,
              np.where(kinds < m + c.busy_share + c.invalid_share, c.invalid_s, c.ring_timeout)))
        return out

    def hit_rate(self) -> float:
        """Share of dials classified live at this moment of the shift (people AMD let through
        and machines it mistook for people)."""
        c = self.centre
        t = self._now - SHIFT_START.timestamp()
        p = c.live_rate_at(t)
        s2 = math.log(1 + (c.ring_sd / c.ring_mean) ** 2)
        z = (math.log(c.ring_timeout) - (math.log(c.ring_mean) - 0.5 * s2)) / math.sqrt(s2)
        answered = 0.5 * (1 + math.erf(z / math.sqrt(2)))
        return answered * (p * (1 - c.amd_false_positive) + (1 - p) * c.machine_share * c.amd_false_negative)

    def allowance(self, counters: RuleCounters, budget: float) -> tuple[float, str]:
        return self.alpha, "oracle"

    def budget(self, counters: RuleCounters) -> float:
        """The oracle has no abandon guard: α alone sets its aggressiveness."""
        return math.inf
