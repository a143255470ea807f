"""Predictive pacing and cruise control: dial ahead of agents from live estimates.

Each tick compares, at three horizons h (half the mean time to a live answer, the mean, and
the ring timeout, each plus the connect limit), two random quantities:

  demand D(h) = answered calls already waiting + live answers expected within h from calls
                ringing now (by their age) + p·G(h) per new dial,
  supply S(h) = ready agents + talking/wrapping agents expected to be free within h (by how
                long they have been talking or wrapping, and the learnt talk and wrap times).

With a normal approximation of D − S, E[(D − S)+] is the expected number of answers finding
no agent. The pacer places the largest number of new dials n for which, at every horizon,
this stays below α · E[D]: α is the share of answers it is willing to lose now, regulated
from the rule window's counters (see `LookaheadPacer.allowance`). A guard keeps the window
under its target: when the budget (target × answered − lost − the losses the calls already
in flight are expected to cause) is within `guard_abandons` of being spent, the pacer only
places dials that cannot abandon — one per idle agent not already covered by a call in
flight. At shift start there is no budget yet, so it begins that way, with the estimators on
their priors; with few agents the learnt α is small and it stays close to that.
"""
from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Iterable
from typing import Literal

import numpy as np
from pydantic import Field

from pom_actors.core.pacing.base import Pacer, PacerConfig
from pom_actors.core.pacing.estimators import AnswerModel, DurationModel, HitRateEstimator
from pom_actors.core.pacing.snapshot import (EventKind, PacerEvent, PacerSnapshot,
                                             PacingDecision, RuleCounters, capped)

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_OTHER_RESULTS = {EventKind.MACHINE, EventKind.BUSY, EventKind.NO_ANSWER, EventKind.INVALID}
WINDOW_S = {"us_30d": 30 * 86400.0, "uk_24h": 86400.0}


def expected_overflow(mu: float, var: float) -> float:
    """E[max(X, 0)] for X ~ Normal(mu, var)."""
    if var <= 1e-12:
        return mu if mu > 0 else 0.0
    s = math.sqrt(var)
    z = mu / s
    return s * _INV_SQRT_2PI * math.exp(-0.5 * z * z) + mu * 0.5 * (1.0 + math.erf(z * _INV_SQRT_2))


class LookaheadConfig(PacerConfig):
    """Estimator priors and regulation settings shared by predictive and cruise control."""

    setpoint_share: float = Field(0.7, gt=0, le=1, description="aim at this share of the target")
    gain: float = Field(3.0, ge=0, le=10, description="how strongly α follows the realised rate")
    guard_abandons: float = Field(2.5, ge=0, description="budget margin (calls) below which only safe dials are placed")
    budget_ramp: float = Field(3.0, ge=0, description="budget (calls) above the guard over which α ramps up from 0")
    prior_answers: float = Field(100.0, ge=0, description="weight (answers) of the setpoint in the smoothed realised rates")
    integral_gain: float = Field(0.15, ge=0, le=5, description="per minute: how fast the multiplier m learns from the recent rate")
    recent_s: float = Field(1800.0, gt=0, description="memory, seconds, of the recent rate the integral term follows")
    initial_multiplier: float = Field(0.5, gt=0, le=20, description="m at start: the model's α is scaled by it")
    prior_hit_rate: float = Field(0.3, gt=0, lt=1, description="live-answer rate assumed before any result")
    prior_hit_weight: float = Field(20.0, ge=0, description="weight (dials) of that prior")
    fast_dials: float = Field(200.0, ge=2, description="memory (dials) of the fast hit-rate average")
    slow_dials: float = Field(2000.0, ge=2, description="memory (dials) of the slow hit-rate average")
    prior_answer_s: float = Field(8.0, gt=0, description="mean dial-to-answer seconds assumed before data")
    ring_timeout_s: float = Field(25.0, gt=0, description="seconds after which an unanswered dial is released")
    prior_talk_s: float = Field(120.0, gt=0, description="mean talk seconds assumed before data")
    prior_wrap_s: float = Field(20.0, ge=0, description="mean wrap-up seconds assumed before data")
    max_lines_per_agent: float = Field(10.0, gt=0, description="hard cap: calls (in flight + talking) per staffed agent")
    refresh_s: float = Field(300.0, gt=0, description="seconds between rebuilds of the duration tables")


class PredictiveConfig(LookaheadConfig):
    mode: Literal["predictive"] = "predictive"
    target: float = Field(0.03, gt=0, lt=0.5, description="abandon-rate limit of the rule window")
    rule: Literal["us_30d", "uk_24h"] = Field("us_30d", description="US: per campaign over 30 days; UK: per 24 h with AMD false positives")
    window_s: float | None = Field(None, gt=0, description="override of the rule window length, seconds")
    amd_false_positive_share: float = Field(0.0, ge=0, le=1, description="share of machine detections that were people")
    count_amd_false_positives: bool | None = Field(None, description="count that share as abandons; null: as the rule does (UK yes, US no)")
    connect_limit_s: float = Field(2.0, gt=0, description="an answered call not with an agent within this is abandoned")

    @property
    def window_seconds(self) -> float:
        """The span the caller's `RuleCounters` must cover."""
        return self.window_s or WINDOW_S[self.rule]

    @property
    def counts_amd(self) -> bool:
        """Whether the formula counts AMD false positives (people hung up on) as abandons."""
        return self.rule == "uk_24h" if self.count_amd_false_positives is None else self.count_amd_false_positives


class CruiseControlConfig(LookaheadConfig):
    mode: Literal["cruise_control"] = "cruise_control"
    service_level: float = Field(0.95, gt=0, lt=1, description="share of answered calls to connect within service_time_s")
    service_time_s: float = Field(2.0, gt=0, description="seconds within which an answered call should reach an agent")
    window_s: float = Field(3600.0, gt=0, description="span the caller's counters cover")


class LookaheadPacer(Pacer):
    """The engine shared by predictive and cruise control; subclasses say what is a loss."""

    def __init__(self, config: LookaheadConfig, connect_limit: float, target: float):
        self.config = config
        self.connect_limit = connect_limit
        self.target = target
        self.hit = HitRateEstimator(config.prior_hit_rate, config.prior_hit_weight,
                                    config.fast_dials, config.slow_dials,
                                    settle_s=config.ring_timeout_s + 10.0)
        self._now = 0.0
        self.answers = AnswerModel(config.prior_answer_s, config.ring_timeout_s)
        self.talk = DurationModel(config.prior_talk_s)
        self.wrap = DurationModel(max(config.prior_wrap_s, 0.1))
        self._p_built = -1.0
        self._built_at = -math.inf
        self._horizons: tuple[float, ...] = ()
        self._g: list[float] = []
        self._last_counts = (0.0, 0.0)
        self._last_t: float | None = None
        self._recent_ans = self._recent_lost = 0.0
        self._log_m = math.log(config.initial_multiplier)

    # -- learning ---------------------------------------------------------------------------
    def observe(self, events: Iterable[PacerEvent]) -> None:
        """Learn from outcomes; dial results are dated back from the latest snapshot time."""
        for ev in events:
            kind = ev.kind
            if kind is EventKind.LIVE:
                self.hit.add(True, self._now - ev.seconds, ev.count)
                self.answers.add_live(ev.seconds)
            elif kind in _OTHER_RESULTS:
                self.hit.add(False, self._now - ev.seconds, ev.count)
                self.answers.add_other(ev.seconds)
            elif kind is EventKind.TALK_END:
                self.talk.add(ev.seconds)
            elif kind is EventKind.WRAP_END:
                self.wrap.add(ev.seconds)

    def hit_rate(self) -> float:
        return self.hit.value

    def _refresh(self, p: float) -> None:
        """Rebuild the lookup tables: all of them every `refresh_s`, the answer table alone when
        the hit rate has moved (it is the cheap one and the one that matters at once)."""
        stale = self._now - self._built_at >= self.config.refresh_s
        if not stale and abs(p - self._p_built) <= 0.1 * self._p_built:
            return
        if stale:
            m = self.answers.mean_answer
            lim = self.connect_limit
            self._horizons = (0.5 * m + lim, m + lim, max(m, self.config.ring_timeout_s) + lim)
            self._f_talk = _Table(self.talk.finish_tables(self._horizons, lag=self.wrap), 1.0 / self.talk.bin_s)
            self._f_wrap = _Table(self.wrap.finish_tables(self._horizons), 1.0 / self.wrap.bin_s)
            self._built_at = self._now
        q = self.answers.demand_tables(p, self._horizons)
        self._q = _Table(q, 1.0)
        self._g = q[:, 0].tolist()
        self._p_built = p

    # -- regulation -------------------------------------------------------------------------
    @abstractmethod
    def losses(self, counters: RuleCounters) -> tuple[float, float]:
        """(answered, lost) in the rule window, as the rule counts them."""

    def allowance(self, counters: RuleCounters, budget: float) -> tuple[float, str]:
        """α: the share of this tick's expected answers the pacer may lose.

        α = setpoint × m × P × R. P (proportional, on the window's rate, smoothed with a prior
        of `prior_answers` at the setpoint) leans against the window drifting from the
        setpoint. m (integral, on a recent rate with a `recent_s` memory) learns how the
        model's α maps to realised losses for this campaign: the normal approximation is
        optimistic with few agents, so m settles lower there. R ramps α down to 0 as the
        budget falls from `guard_abandons + budget_ramp` to the guard, so a small window
        slows down before it has to stop; m does not integrate while R < 1 (no wind-up).
        """
        cfg = self.config
        answered, lost = self.losses(counters)
        setpoint = cfg.setpoint_share * self.target
        ramp = min(1.0, max(0.0, (budget - cfg.guard_abandons) / cfg.budget_ramp)) if cfg.budget_ramp > 0 else 1.0
        d_ans, d_lost = answered - self._last_counts[0], lost - self._last_counts[1]
        dt = self._now - self._last_t if self._last_t is not None else 0.0
        self._last_counts, self._last_t = (answered, lost), self._now
        if d_ans >= 0 and d_lost >= 0 and dt > 0:  # a shrinking window is no news
            decay = math.exp(-dt / cfg.recent_s)
            self._recent_ans = self._recent_ans * decay + d_ans
            self._recent_lost = self._recent_lost * decay + d_lost
            if ramp >= 1.0:
                recent = (self._recent_lost + setpoint * cfg.prior_answers) / (self._recent_ans + cfg.prior_answers)
                self._log_m += cfg.integral_gain * (setpoint - recent) / setpoint * dt / 60.0
                self._log_m = min(math.log(20.0), max(math.log(0.02), self._log_m))
        realised = (lost + setpoint * cfg.prior_answers) / (answered + cfg.prior_answers)
        prop = min(2.5, max(0.25, 1.0 + cfg.gain * (setpoint - realised) / setpoint))
        return setpoint * math.exp(self._log_m) * prop * ramp, f"realised {lost / answered if answered else 0.0:.2%}"

    def alarm(self, counters: RuleCounters) -> str | None:
        """Why the job must stop dialling whatever the pace, or None (see PredictivePacer)."""
        return None

    def budget(self, counters: RuleCounters) -> float:
        """Losses the window can still take before it is over the target."""
        answered, lost = self.losses(counters)
        return self.target * answered - lost

    # -- decision ---------------------------------------------------------------------------
    def decide(self, snapshot: PacerSnapshot) -> PacingDecision:
        self._now = snapshot.now.timestamp()
        self.observe(snapshot.events)
        self.hit.settle(self._now)
        alarm = self.alarm(snapshot.counters)
        if alarm is not None:
            return PacingDecision(0, alarm, alarm=alarm)
        p = self.hit_rate()
        self._refresh(p)
        checks = self._balance(snapshot)
        committed = max(expected_overflow(d - s, v) for d, s, v, _ in checks)
        budget = self.budget(snapshot.counters) - committed
        alpha, why = self.allowance(snapshot.counters, budget)
        ready = len(snapshot.ready)
        staffed = snapshot.staffed
        if staffed == 0:
            return PacingDecision(0, "no agent staffed")
        in_flight = snapshot.in_flight
        safe = max(0, ready - in_flight)
        if budget < self.config.guard_abandons or alpha <= 0.0:
            return PacingDecision(capped(safe, snapshot), f"budget {budget:.1f} < guard: safe dials only")
        cap = max(0, int(self.config.max_lines_per_agent * staffed) - in_flight - len(snapshot.talking))

        def fits(n: int) -> bool:
            for dem, sup, var, g in checks:
                d = dem + n * g
                if expected_overflow(d - sup, var + n * (g - g * g)) > alpha * d + 1e-6:
                    return False
            return True

        # Largest n with fits(n): the feasible set is an interval from 0, and n is usually
        # small, so gallop up from 1 and then bisect the last step.
        lo, step = 0, 1
        while lo < cap and fits(min(cap, lo + step)):
            lo = min(cap, lo + step)
            step *= 2
        hi = min(cap, lo + step) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid - 1
        n = max(lo, min(safe, cap))
        dem, sup = checks[1][0], checks[1][1]
        return PacingDecision(capped(n, snapshot),
                              f"p={p:.3f} demand={dem:.1f} supply={sup:.1f} alpha={alpha:.3%} {why}")

    def _balance(self, snapshot: PacerSnapshot) -> list[tuple[float, float, float, float]]:
        """Per horizon: expected demand, expected supply, their variance, demand per new dial."""
        dem = [float(len(snapshot.waiting))] * 3
        var = [0.0] * 3
        sup = [float(len(snapshot.ready))] * 3
        for table, ages, into in ((self._q, snapshot.dialling, dem),
                                  (self._f_talk, snapshot.talking, sup),
                                  (self._f_wrap, snapshot.wrapping, sup)):
            if ages:
                sums = table.sums(ages)
                for k in range(3):
                    into[k] += sums[k]
                    var[k] += sums[k + 3]
        return list(zip(dem, sup, var, self._g))


class _Table:
    """Per-horizon probabilities by age bin, with their Bernoulli variances, summed over the
    ages of a snapshot — in numpy for long tuples, in plain Python for short ones, whichever
    is cheaper, because this runs for every tick."""

    def __init__(self, probs: np.ndarray, per_second: float):
        self._np = np.concatenate([probs, probs - probs * probs])
        self._rows = self._np.tolist()
        self._scale = per_second
        self._last = probs.shape[1] - 1

    def sums(self, ages: tuple[float, ...]) -> list[float]:
        last, scale = self._last, self._scale
        if len(ages) > 32:
            idx = np.minimum((np.fromiter(ages, float, len(ages)) * scale).astype(np.intp), last)
            return self._np[:, idx].sum(axis=1).tolist()
        idx = [min(int(a * scale), last) for a in ages]
        return [sum([row[i] for i in idx]) for row in self._rows]


AMD_MIN_ANSWERS = 20     # live answers in the window before the AMD alarm is judged


class PredictivePacer(LookaheadPacer):
    """Keeps the abandon rate of the rule window under `target` (US or UK formula).

    Where the formula counts AMD false positives, `amd_false_positive_share` of the machine
    detections are abandons. Those come with every dial, however slowly it dials: when they
    alone reach the target (false positives / live answers, once the window has
    `AMD_MIN_ANSWERS`), the pacer dials nothing and says why in `PacingDecision.alarm`."""

    def __init__(self, config: PredictiveConfig):
        super().__init__(config, config.connect_limit_s, config.target)

    def amd_losses(self, counters: RuleCounters) -> float:
        if not self.config.counts_amd:
            return 0.0
        return self.config.amd_false_positive_share * counters.machine_detected

    def losses(self, counters: RuleCounters) -> tuple[float, float]:
        return float(counters.live_answered), float(counters.abandoned) + self.amd_losses(counters)

    def alarm(self, counters: RuleCounters) -> str | None:
        fp = self.amd_losses(counters)
        if counters.live_answered < AMD_MIN_ANSWERS or fp <= 0:
            return None
        share = fp / counters.live_answered
        if share < self.target:
            return None
        return (f"AMD false positives alone are {share:.2%} of live answers "
                f"(target {self.target:.2%}): not dialling")


class CruiseControlPacer(LookaheadPacer):
    """Holds a service level: `service_level` of answered calls with an agent within
    `service_time_s`. Answered calls wait in queue instead of being dropped at 2 s."""

    def __init__(self, config: CruiseControlConfig):
        super().__init__(config, config.service_time_s, 1.0 - config.service_level)

    def losses(self, counters: RuleCounters) -> tuple[float, float]:
        return float(counters.live_answered), float(counters.live_answered - counters.within_service_level)
